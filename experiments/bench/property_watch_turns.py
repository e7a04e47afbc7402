"""check_feature_map with claims {"unbiased", "positive", "finite"} on a correct positive-feature map (d = 8, m = 64,
plain path), seeds 0-3, CPU seconds of each (time.process_time) and their sum; run it once per tree, in turns:

    for t in OLD NEW OLD NEW; do
        PYTHONPATH=$t OMP_NUM_THREADS=1 python experiments/bench/property_watch_turns.py $t
    done

(trees: checkouts, e.g. ``git worktree add --detach DIR COMMIT``). docs/benchmarks.md, "The test suite", quotes it
for the positive/finite rows reading every map the statistical checks draw.
"""
import math
import sys
import time

import torch

from kerneltheory import kernels
from kerneltheory.testing import check_feature_map


def sample(g, d=8, m=64):
    w = torch.randn(m, d, generator=g, dtype=torch.float64)
    return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)


times, report = [], None
for seed in range(4):
    start = time.process_time()
    report = check_feature_map(sample, kernels.softmax, dim=8, claims={"unbiased", "positive", "finite"}, seed=seed)
    times.append(time.process_time() - start)
print(sys.argv[1] if len(sys.argv) > 1 else "", [round(t, 2) for t in times], round(sum(times), 2), report.status)
