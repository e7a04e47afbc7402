#!/bin/bash
# discovery run: CUDA tests, bench quick on cuda, a small variance probe
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
S=$(date +%s)
el(){ echo "== $(( $(date +%s) - S )) s: $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee $OUT/smi.txt
python3 -c "import torch,sys;print(sys.version, torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" | tee -a $OUT/smi.txt
lscpu | grep -i "model name" | tee -a $OUT/smi.txt
el tests
timeout 150 python3 -m pytest -q -rs -p no:cacheprovider -p kerneltheory.testing.plugin tests/test_nn.py tests/test_bench.py tests/test_variance_experiments.py tests/test_spectral.py -k "cuda or CUDA or device" > $OUT/cuda_tests.txt 2>&1; echo rc=$?; tail -25 $OUT/cuda_tests.txt
el bench
timeout 200 python3 -m kerneltheory bench all --scale quick --device cuda --out /tmp/bench > $OUT/bench_log.txt 2>&1; echo rc=$?; tail -30 $OUT/bench_log.txt
tar czf $OUT/bench.tgz -C /tmp bench
el variance
timeout 60 python3 -m kerneltheory variance --only oprf_saderf --draws 65536 --device cuda --no-plot --quiet --out /tmp/var > $OUT/var_log.txt 2>&1; echo rc=$?; tail -8 $OUT/var_log.txt
el done
