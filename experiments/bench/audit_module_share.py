"""How much of an attention module's audit is the module's own code: ``check_attention`` of the performer-style
``FastAttention`` of ``examples/performer_style.py`` (causal, d = 8, one head of two on ``"BHLd"``, the rows
``consistency``, ``stabiliser``, ``padding`` and ``causality``, as tests/test_audit_realistic.py audits it), with the
CPU time (``time.process_time``, one torch thread) spent in the module's constructor (it draws its orthogonal
projection, a QR per block) and in its ``forward`` counted apart from the audit's total::

    OMP_NUM_THREADS=1 python experiments/bench/audit_module_share.py [--reps 3] [--seed 0]

Prints one line per run: the verdict, the audit's CPU and wall time, the module's construction and forward CPU time
and how often each ran.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import performer_style  # noqa: E402

from kerneltheory.testing import attention_from_module, check_attention  # noqa: E402

D = 8


def timed(spent: dict, calls: dict, key: str, fn):
    def call(*args, **kwargs):
        start = time.process_time()
        calls[key] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.process_time() - start

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="audits to run, one after the other")
    parser.add_argument("--seed", type=int, default=0, help="the audit's seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cls = performer_style.FastAttention
    spent, calls = {"construction": 0.0, "forward": 0.0}, {"construction": 0, "forward": 0}
    cls.__init__ = timed(spent, calls, "construction", cls.__init__)
    cls.forward = timed(spent, calls, "forward", cls.forward)
    factory = attention_from_module(lambda m: cls(D, m, causal=True), layout="BHLd", mask="mask", head=1)
    for _ in range(args.reps):
        spent.update(construction=0.0, forward=0.0)
        calls.update(construction=0, forward=0)
        cpu, wall = time.process_time(), time.perf_counter()
        report = check_attention(factory, dim=D, causal=True, alpha=1e-6, seed=args.seed, input_std=0.25,
                                 checks=["consistency", "stabiliser", "padding", "causality"])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        module = spent["construction"] + spent["forward"]
        print(f"{report.status}: audit {cpu:.2f} s CPU ({wall:.2f} s wall); module construction "
              f"{spent['construction']:.2f} s ({calls['construction']} calls), forward {spent['forward']:.2f} s "
              f"({calls['forward']} calls): {module / cpu:.0%} of the audit's CPU")


if __name__ == "__main__":
    main()
