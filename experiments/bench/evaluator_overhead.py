"""The checks' cost per draw of a user's feature map over a direct loop: ``_Evaluator`` (the engine's way of calling
a sampler, one draw at a time through its plain path, with its output checks and copies) against a loop that calls
the same sampler and map and reduces each draw to its estimates, in turns, CPU time per draw (one torch thread).

    OMP_NUM_THREADS=1 python experiments/bench/evaluator_overhead.py [--reps 3] [--blocks 20]

Run it with ``PYTHONPATH`` set to each tree to compare trees. Prints one line per turn and method.
"""
import argparse
import time

import torch

from kerneltheory.testing.inputs import InputFamily
from kerneltheory.testing.user_calls import _Evaluator


def main(reps: int, blocks: int, r: int = 256, d: int = 8, m: int = 64, n: int = 40) -> None:
    torch.set_num_threads(1)
    g0 = torch.Generator().manual_seed(0)
    fams = [InputFamily(name, torch.randn(n, d, generator=g0, dtype=torch.float64),
                        torch.randn(n, d, generator=g0, dtype=torch.float64)) for name in ("a", "b")]

    def sample(g):
        w = torch.randn(d, m, generator=g, dtype=torch.float64)
        return lambda x: torch.exp(x @ w - (x * x).sum(-1, keepdim=True) / 2) / m**0.5

    ev = _Evaluator(sample, fams, None, None)
    xq, xk = torch.cat([f.x for f in fams]), torch.cat([f.y for f in fams])

    def direct(g, count):
        out = []
        for _ in range(count):
            fm = sample(g)
            out.append((fm(xq) * fm(xk)).sum(-1))
        return torch.stack(out)

    for _ in range(reps):
        for name, f in (("evaluator", ev), ("direct", direct)):
            g = torch.Generator().manual_seed(1)
            t = time.process_time()
            for _ in range(blocks):
                f(g, r)
            print(f"{name}: {(time.process_time() - t) / (blocks * r) * 1e6:.1f} µs of CPU per draw")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="turns of the two methods")
    parser.add_argument("--blocks", type=int, default=20, help="blocks of 256 draws per turn and method")
    args = parser.parse_args()
    main(args.reps, args.blocks)
