"""The package's normal sampler (``kerneltheory._normal.standard_normal``) against ``torch.randn`` in float64 (the
baseline, which it replaced in the spectral laws), CPU and wall time per normal, the two timed in turns in one
process, one thread. Run from the repository root:

    OMP_NUM_THREADS=1 python experiments/bench/normal_sampler.py experiments/bench/normal_sampler.json

The sizes span those ``kerneltheory report`` draws (most of its 4.6·10⁸ normals come in calls of 2¹⁴–2²¹).
"""

from __future__ import annotations

import os
import platform
import time

import torch

from kerneltheory._normal import standard_normal
from kerneltheory.io import write_json_atomic


def per_normal(fn, n: int, calls: int) -> tuple[float, float]:
    """(CPU ns, wall ns) per normal over ``calls`` calls of ``fn(n)``."""
    c, w = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn(n)
    return ((time.process_time() - c) / calls / n * 1e9, (time.perf_counter() - w) / calls / n * 1e9)


def main(path: str) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    methods = {
        "torch.randn": lambda n: torch.randn(n, generator=g, dtype=torch.float64),
        "standard_normal": lambda n: standard_normal((n,), g),
    }
    rows = []
    for n in (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22):
        calls = max(3, (1 << 24) // n)
        for f in methods.values():
            f(n)  # warm-up
        times = {k: [] for k in methods}
        for rep in range(5):  # in turns, the order alternating
            for name in list(methods)[:: 1 if rep % 2 == 0 else -1]:
                times[name].append(per_normal(methods[name], n, calls))
        best = {k: (min(c for c, _ in v), min(w for _, w in v)) for k, v in times.items()}
        row = {"n": n, "calls": calls,
               "randn_cpu_ns": round(best["torch.randn"][0], 2), "randn_wall_ns": round(best["torch.randn"][1], 2),
               "sampler_cpu_ns": round(best["standard_normal"][0], 2),
               "sampler_wall_ns": round(best["standard_normal"][1], 2),
               "cpu_ratio": round(best["standard_normal"][0] / best["torch.randn"][0], 3),
               "wall_ratio": round(best["standard_normal"][1] / best["torch.randn"][1], 3)}
        rows.append(row)
        print(row, flush=True)
    record = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "loadavg": os.getloadavg(), "rows": rows}
    write_json_atomic(path, record)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="normal_sampler.json", help="JSON file to write (atomically)")
    main(parser.parse_args().out)
