"""The audit of a deterministic feature module (elu + 1 on ``[B, H, L, d]``, d = 8, two heads inserted) declared by
``from_module(module, layout="BHLd", redraw=False)`` against the same map given as a plain sampler that declares
nothing (``lambda generator: features``), with its own kernel (the verdict PASSED) and with a wrong one (FAILED):
CPU seconds of ``check_feature_map(..., claims={"unbiased"})`` (``time.process_time``, one torch thread), in turns,
and the draws of its rows:

    OMP_NUM_THREADS=1 python experiments/bench/deterministic_audit.py [--reps 3]

docs/auditing.md and docs/benchmarks.md quote it.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from kerneltheory.testing import check_feature_map, from_module


class Elu(nn.Module):
    def forward(self, x):
        return F.elu(x) + 1


def kernel(x, y):
    return (F.elu(x) + 1) @ (F.elu(y) + 1).T


def wrong(x, y):  # the +1 forgotten on one side
    return (F.elu(x) + 1) @ F.elu(y).T


def plain(x):
    return F.elu(x) + 1


def main(reps: int) -> None:
    torch.set_num_threads(1)
    cases = {"declared (redraw=False)": lambda: from_module(Elu(), layout="BHLd", redraw=False),
             "plain sampler": lambda: (lambda generator: plain)}
    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(reps):
        order = list(cases.items()) if rep % 2 == 0 else list(cases.items())[::-1]
        for name, make in order:
            for kname, k in (("own kernel", kernel), ("wrong kernel", wrong)):
                t = time.process_time()
                report = check_feature_map(make(), k, dim=8, claims={"unbiased"}, seed=rep)
                seconds = time.process_time() - t
                times.setdefault((name, kname), []).append(seconds)
                draws = sorted({c.sample_size for c in report.checks if c.claim == "unbiased"})
                print(f"turn {rep}: {name}, {kname}: {report.status}, {seconds:.2f} s of CPU, draws per row {draws}")
    for (name, kname), ts in times.items():
        print(f"median: {name}, {kname}: {statistics.median(ts):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="turns of the two ways")
    args = parser.parse_args()
    main(args.reps)
