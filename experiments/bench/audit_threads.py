"""One torch thread against torch's default for a feature-map audit, timed in turns (docs/auditing.md, "Threads").

    python experiments/bench/audit_threads.py experiments/bench/audit_threads.json

Each run is a fresh process auditing a correct FAVOR+ draw from torch's global generator (d = 6, m = 128, claim
``unbiased``, quick budget, seed 0) with ``check_feature_map``; the thread count is set by ``OMP_NUM_THREADS`` (unset:
torch's default, one per core). Three turns, the order alternating; CPU time (user + system) and wall time of the
audit inside the child, and the load average beside them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import math, json, time, torch
from kerneltheory import kernels
from kerneltheory.testing import check_feature_map
from kerneltheory.testing.adapters import global_rng_sampler

def draw():
    w = torch.randn(128, 6, dtype=torch.float64)
    return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(128)

c0, w0 = time.process_time(), time.perf_counter()
report = check_feature_map(global_rng_sampler(draw), kernels.softmax, dim=6, claims={"unbiased"})
print(json.dumps({"cpu_seconds": round(time.process_time() - c0, 3), "wall_seconds": round(time.perf_counter() - w0, 3),
                  "status": report.status, "threads": torch.get_num_threads()}))
"""


def main(out: str) -> None:
    records = []
    for turn in range(3):
        modes = ("1", None) if turn % 2 == 0 else (None, "1")
        for omp in modes:
            env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
            if omp is not None:
                env["OMP_NUM_THREADS"] = omp
            proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            rec.update(turn=turn, omp_num_threads=omp or "unset", loadavg=os.getloadavg()[0])
            records.append(rec)
            print(rec, flush=True)
    with open(out, "w") as f:
        json.dump(records, f, indent=1)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="JSON file to write")
    main(parser.parse_args().out)
