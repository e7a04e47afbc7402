#!/bin/bash
# The CUDA measurements of docs/benchmarks.md#cuda, as one script for a machine with a GPU:
#   bash experiments/bench/cuda/run_all.sh OUTDIR
# from the repository root (the package need not be installed: PYTHONPATH=. is set here). Every step has its own
# time limit, so a slow step cannot take the others with it; the variance cells are cached under OUTDIR, so a
# second run resumes where the first stopped. Writes OUTDIR/{machine.txt,cuda_tests.txt,bench.tgz,variance.tgz,log.txt}.
set -u
OUTDIR=${1:?usage: run_all.sh OUTDIR}
mkdir -p "$OUTDIR/work"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
START=$(date +%s)
step() { echo "== $(( $(date +%s) - START )) s: $*" | tee -a "$OUTDIR/log.txt"; }
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys, torch; print(sys.version, torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
  lscpu | grep -i "model name"
} > "$OUTDIR/machine.txt" 2>&1
step "CUDA tests"
timeout 240 python3 -m pytest -q -rs -p no:cacheprovider -p kerneltheory.testing.plugin -m gpu tests \
  > "$OUTDIR/cuda_tests.txt" 2>&1
echo "rc=$?" >> "$OUTDIR/cuda_tests.txt"; tail -3 "$OUTDIR/cuda_tests.txt" | tee -a "$OUTDIR/log.txt"
step "bench all --device cuda"
timeout 240 python3 -m kerneltheory bench all --scale quick --device cuda --out "$OUTDIR/work/bench" \
  >> "$OUTDIR/log.txt" 2>&1
echo "rc=$?" >> "$OUTDIR/log.txt"
tar czf "$OUTDIR/bench.tgz" -C "$OUTDIR/work" bench
# R = 10^8 draws per point, frequencies drawn on the GPU; the quick scale's axis values. A block holds
# block·m·d float64 normals at once: 2^20·256·8 B = 2 GiB at d = m = 16.
for fig in oprf_saderf variance_vs_norm variance_vs_angle; do
  step "variance $fig R = 1e8"
  timeout 300 python3 -m kerneltheory variance --only "$fig" --scale quick --draws 100000000 --block 1048576 \
    --device cuda --rng device --no-plot --quiet --out "$OUTDIR/work/variance" >> "$OUTDIR/log.txt" 2>&1
  echo "rc=$?" >> "$OUTDIR/log.txt"
done
tar czf "$OUTDIR/variance.tgz" -C "$OUTDIR/work" variance
step done
