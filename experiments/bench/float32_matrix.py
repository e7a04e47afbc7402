"""Float32 evaluation (``compute_dtype=torch.float32``) against float64, timed in turns in one process.

    OMP_NUM_THREADS=1 python experiments/bench/float32_matrix.py experiments/bench/float32_matrix.json

Two parts, each run ``--reps`` times (default 3) with the order of the two dtypes alternating; medians are summed:

* the claim matrix: `verify_estimator` (quick budget, seed 0) of every registered estimator whose
  ``float32_allowed`` holds, with ``compute_dtype`` None and float32; CPU seconds (`time.process_time`) and wall
  seconds of each call, and whether the verdicts agree;
* the estimates alone: `sample_estimates` of positive/gaussian on 64 pairs and 1024 draws, at the claim matrix's
  size (d = 4, m = 16) and at an attention head's (d = 64, m = 256).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

import torch

from kerneltheory import estimators
from kerneltheory.io import write_json_atomic
from kerneltheory.testing.matrix import verify_estimator

DTYPES = {"float64": None, "float32": torch.float32}


def _timed(fn, *args, **kwargs):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.process_time() - c0, time.perf_counter() - w0


def _matrix(reps: int) -> list[dict]:
    rows = []
    names = [n for n in estimators.list() if estimators.get(n, dim=4, num_features=16).float32_allowed]
    for i, name in enumerate(names):
        row = {"estimator": name, **{k: {"cpu_seconds": [], "wall_seconds": []} for k in DTYPES}}
        verdicts = {}
        for rep in range(reps):
            for key in (list(DTYPES) if (i + rep) % 2 == 0 else list(DTYPES)[::-1]):
                (found, _), cpu, wall = _timed(verify_estimator, name, budget="quick", seed=0,
                                               compute_dtype=DTYPES[key])
                row[key]["cpu_seconds"].append(round(cpu, 3))
                row[key]["wall_seconds"].append(round(wall, 3))
                verdicts.setdefault(key, [(v.claim, v.verdict) for v in found])
        row["verdicts_agree"] = verdicts["float64"] == verdicts["float32"]
        rows.append(row)
    return rows


def _estimates(reps: int) -> list[dict]:
    rows = []
    for d, m in ((4, 16), (64, 256)):
        est = estimators.get("positive/gaussian", dim=d, num_features=m)
        g = torch.Generator().manual_seed(0)
        x, y = (torch.randn(64, d, generator=g, dtype=torch.float64) / d**0.5 for _ in range(2))
        row = {"dim": d, "num_features": m, "pairs": 64, "draws": 1024,
               **{k: {"cpu_seconds": [], "wall_seconds": []} for k in DTYPES}}
        for rep in range(reps):
            for key in (list(DTYPES) if rep % 2 == 0 else list(DTYPES)[::-1]):
                _, cpu, wall = _timed(est.sample_estimates, x, y, torch.Generator().manual_seed(rep), 1024,
                                      compute_dtype=DTYPES[key])
                row[key]["cpu_seconds"].append(round(cpu, 4))
                row[key]["wall_seconds"].append(round(wall, 4))
        rows.append(row)
    return rows


def _ratio(rows: list[dict]) -> dict:
    """float32 over float64, of the summed medians (CPU and wall)."""
    out = {}
    for unit in ("cpu_seconds", "wall_seconds"):
        total = {k: sum(statistics.median(r[k][unit]) for r in rows) for k in DTYPES}
        ratio = round(total["float32"] / total["float64"], 3)
        out[unit] = {**{k: round(v, 3) for k, v in total.items()}, "ratio": ratio}
    return out


def main(out: str, reps: int = 3) -> dict:
    torch.set_num_threads(1)
    load = os.getloadavg()
    matrix, alone = _matrix(reps), _estimates(reps)
    record = {
        "reps": reps,
        "machine": {"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor()
                    or platform.machine(), "cpus": os.cpu_count(), "loadavg_before": load,
                    "loadavg_after": os.getloadavg()},
        "matrix_total": _ratio(matrix),
        "matrix_verdicts_differ": [r["estimator"] for r in matrix if not r["verdicts_agree"]],
        "estimates_alone": [{"dim": r["dim"], "num_features": r["num_features"], **_ratio([r])} for r in alone],
        "matrix": matrix,
        "estimates": alone,
    }
    write_json_atomic(out, record)
    return record


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="float32_matrix.json", help="JSON file to write (atomically)")
    parser.add_argument("--reps", type=int, default=3, help="turns per estimator and dtype (default 3)")
    args = parser.parse_args()
    rec = main(args.out, args.reps)
    print(json.dumps({k: rec[k] for k in ("matrix_total", "matrix_verdicts_differ", "estimates_alone")}, indent=1))
