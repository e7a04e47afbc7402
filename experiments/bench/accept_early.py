"""The claim matrix with accepting early switched off and on, in one process, estimator by estimator in turns.

    OMP_NUM_THREADS=1 python experiments/bench/accept_early.py experiments/bench/accept_early.json

For each registered estimator, `verify_estimator` (quick budget, seed 0) runs twice in alternating order: with
`futility_plan` replaced by the empty plan (every check runs to its budget unless it rejects) and with the
package's plan. Records the CPU seconds (`time.process_time`), the summed sample sizes of the check rows and the
verdicts of both runs; the verdicts must agree.
"""

from __future__ import annotations

import json
import time

import torch

import kerneltheory.testing.verify as verify
from kerneltheory import estimators
from kerneltheory.io import write_json_atomic
from kerneltheory.testing.matrix import verify_estimator


def _run(name: str) -> tuple[float, int, list[str]]:
    start = time.process_time()
    verdicts, _ = verify_estimator(name)
    cpu = time.process_time() - start
    draws = sum(c["sample_size"] for v in verdicts for c in v.checks)
    return cpu, draws, [v.verdict for v in verdicts]


def main(out: str) -> dict:
    torch.set_num_threads(1)
    plan = verify.futility_plan
    modes = {"off": lambda points, miss=0.0: {}, "on": plan}
    rows = []
    for i, name in enumerate(estimators.list()):
        row = {"estimator": name}
        for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
            verify.futility_plan = modes[mode]
            try:
                row[mode] = dict(zip(("cpu_seconds", "draws", "verdicts"), _run(name), strict=True))
            finally:
                verify.futility_plan = plan
        rows.append(row)
    total = {m: {"cpu_seconds": round(sum(r[m]["cpu_seconds"] for r in rows), 2),
                 "draws": sum(r[m]["draws"] for r in rows)} for m in modes}
    differ = [r["estimator"] for r in rows if r["off"]["verdicts"] != r["on"]["verdicts"]]
    record = {"total": total, "verdicts_differ": differ, "estimators": rows}
    write_json_atomic(out, record)
    return record


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="accept_early.json", help="JSON file to write (atomically)")
    rec = main(parser.parse_args().out)
    print(json.dumps({"total": rec["total"], "verdicts_differ": rec["verdicts_differ"]}))
