"""critical_z against the 60-halving bisection it replaced (the baseline, written out below), CPU time per call,
the two timed in turns in one process, one thread. Run from the repository root:

    OMP_NUM_THREADS=1 python experiments/bench/critical_z_turns.py experiments/bench/critical_z_turns.json

Skewness per pair is exp(N(0, 1)) (seeded), as the checks see it; the cases span the levels the sequential looks use
(1e-9, 1e-60) and levels near 1 where log p is flat.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import time

import torch

from kerneltheory.testing.pvalues import _cramer_rate, _log_p, critical_z


def bisection(level, skewness, n, studentised):
    """The baseline: 60 halvings of [0, min(z_t, 40)] on log p."""
    k, turn = _cramer_rate(skewness, n, studentised)
    top = turn.clamp(max=40.0)
    target = math.log(level)
    lo, hi = torch.zeros_like(top), top.clone()
    for _ in range(60):
        mid = (lo + hi) / 2
        below = _log_p(mid, k) <= target
        hi, lo = torch.where(below, mid, hi), torch.where(below, lo, mid)
    return torch.where(_log_p(top, k) <= target, hi, torch.full_like(top, math.inf))


def cpu_per_call(fn, calls: int) -> float:
    t = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - t) / calls


def main(path: str) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rows = []
    for pairs in (1, 10, 100, 1000, 10000):
        for level, n, studentised in ((1e-9, 4096, True), (1e-60, 1_000_000, False), (0.999, 256, False)):
            sk = torch.exp(torch.randn(pairs, generator=g, dtype=torch.float64))
            calls = max(3, 2000 // pairs)
            times = {"bisection": [], "critical_z": []}
            for rep in range(3):  # in turns, the order alternating
                order = ["bisection", "critical_z"][:: 1 if rep % 2 == 0 else -1]
                for name in order:
                    args = (level, sk, n, studentised)
                    f = functools.partial(bisection, *args) if name == "bisection" else functools.partial(
                        critical_z, *args[:3], studentised=studentised)
                    times[name].append(cpu_per_call(f, calls))
            a, b = bisection(level, sk, n, studentised), critical_z(level, sk, n, studentised=studentised)
            fin = torch.isfinite(a)
            rel = float(((b[fin] - a[fin]).abs() / a[fin]).max()) if bool(fin.any()) else 0.0
            row = {"pairs": pairs, "level": level, "n": n, "studentised": studentised,
                   "bisection_ms": round(1e3 * min(times["bisection"]), 3),
                   "critical_z_ms": round(1e3 * min(times["critical_z"]), 3),
                   "ratio": round(min(times["critical_z"]) / min(times["bisection"]), 3),
                   "max_rel_difference": rel, "same_infinities": bool(torch.equal(torch.isinf(a), torch.isinf(b)))}
            rows.append(row)
            print(row, flush=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)) or ".")
    with os.fdopen(fd, "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="critical_z_turns.json", help="JSON file to write (atomically)")
    main(parser.parse_args().out)
