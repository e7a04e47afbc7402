"""Estimator evaluation hot spots of ``kerneltheory report`` (#16): an old tree against a new one, in turns.

    python experiments/bench/hotspots_turns.py OLD_TREE NEW_TREE [REPEATS] > experiments/bench/hotspots_turns.json

Each turn runs one child process per tree (``PYTHONPATH=TREE``, one torch thread, order alternating between turns);
the child imports the package once, then times each target with ``time.process_time`` (CPU) and
``time.perf_counter`` (wall) and prints a SHA-256 digest of what the target computed, so that the two trees'
results can be compared bitwise. The targets:

* ``matrix <name>``: ``verify_estimator(name)`` at the quick budget (the claim matrix's work for one estimator);
  the digest covers the verdicts without their timings;
* ``sweep cells <law>``: ``evaluate_cell`` on every cell of the quick variance sweeps whose estimator uses the law
  (``orthogonal``: the QR-based ORF sampler; ``gaussian``: iid normals), digest of the cells' moments;
* ``attention theory``: ``attention_theory_rows(quick=True)``, digest of its rows.

The output is one JSON record per (turn, tree, target) and a summary: the median CPU and wall seconds of each
target per tree over the turns and their ratio old/new.

    python experiments/bench/hotspots_turns.py --matrix OLD_TREE NEW_TREE

instead runs ``verify_estimator`` (quick budget, seed 0) on every registered estimator under each tree and compares
the verdicts: the estimators whose records differ at all (timings aside), the verdicts that differ, and the largest
relative difference of each numeric field (p_value, statistic, effect_size, ...).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import hashlib, json, time
import torch
from kerneltheory.testing.matrix import verify_estimator
from kerneltheory.testing.attention_theory import attention_theory_rows
from kerneltheory.experiments.defaults import default_configs
from kerneltheory.experiments.runner import plan
from kerneltheory.experiments.cells import evaluate_cell

def digest(obj):
    return hashlib.sha256(json.dumps(obj, default=repr, sort_keys=True).encode()).hexdigest()[:16]

def matrix(name):
    verdicts, _ = verify_estimator(name, budget="quick", alpha=1e-6, seed=0)
    rows = [v.as_dict() for v in verdicts]
    for r in rows:
        for c in r["checks"]:
            c.pop("seconds", None)
    return rows

specs = [spec for cfg in default_configs() for _, _, spec in plan(cfg, "quick")]

def cells(law):
    return [evaluate_cell(s).to_dict() for s in specs if s["estimator"].endswith("/" + law)]

def attention():
    return [r.as_dict() for r in attention_theory_rows(quick=True)]

targets = [(f"matrix {n}", lambda n=n: matrix(n)) for n in
           ("polysketch/gaussian", "hrf/gaussian", "hrf/orthogonal", "trig/generative", "positive/gauss_hermite")]
targets += [(f"sweep cells {law}", lambda law=law: cells(law)) for law in ("orthogonal", "gaussian")]
targets += [("attention theory", attention)]
verify_estimator("trig/gaussian", budget="quick", alpha=1e-6, seed=0)  # warm: lazy imports, first-call costs
out = []
for label, fn in targets:
    c0, w0 = time.process_time(), time.perf_counter()
    res = fn()
    out.append({"target": label, "cpu_seconds": time.process_time() - c0, "wall_seconds": time.perf_counter() - w0,
                "digest": digest(res)})
print(json.dumps(out))
"""


MATRIX_CHILD = r"""
import json, sys
import kerneltheory.estimators as E
from kerneltheory.testing.matrix import verify_estimator
out = {n: [v.as_dict() for v in verify_estimator(n, budget="quick", alpha=1e-6, seed=0)[0]] for n in E.list()}
json.dump(out, sys.stdout, default=float)
"""


def _differences(a, b, key: str, worst: dict) -> bool:
    """Whether the records a, b differ (timings aside); the largest relative difference per numeric key in worst."""
    if isinstance(a, dict):
        return any([_differences(a[k], b[k], k, worst) for k in a if k != "seconds"])
    if isinstance(a, list):
        return len(a) != len(b) or any([_differences(u, v, key, worst) for u, v in zip(a, b, strict=True)])
    if isinstance(a, float) and isinstance(b, float):
        if a == b or (a != a and b != b):
            return False
        worst[key] = max(worst.get(key, 0.0), abs(a - b) / max(abs(a), abs(b)))
        return True
    return a != b


def compare_matrix(old: str, new: str) -> dict:
    runs = {}
    for label, tree in (("old", old), ("new", new)):
        env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1")
        p = subprocess.run([sys.executable, "-c", MATRIX_CHILD], env=env, capture_output=True, text=True,
                           cwd="/tmp", check=True)
        runs[label] = json.loads(p.stdout)
    a, b = runs["old"], runs["new"]
    worst: dict = {}
    differ = [n for n in a if _differences(a[n], b[n], n, worst)]
    verdicts = [(n, u["claim"], u["verdict"], v["verdict"]) for n in a for u, v in zip(a[n], b[n], strict=True)
                if u["verdict"] != v["verdict"]]
    return {"command": " ".join(sys.argv), "estimators": len(a), "records_differ": differ,
            "verdicts_differ": verdicts, "max_relative_difference": worst}


def main(old: str, new: str, repeats: int = 3) -> dict:
    trees = {"old": old, "new": new}
    records = []
    for rep in range(repeats):
        order = list(trees.items()) if rep % 2 == 0 else list(trees.items())[::-1]
        for label, tree in order:
            env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1")
            p = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, cwd="/tmp",
                               check=True)
            for r in json.loads(p.stdout.strip().splitlines()[-1]):
                records.append({"turn": rep, "tree": label, **r, "loadavg": os.getloadavg()[0]})
    summary = {}
    for target in dict.fromkeys(r["target"] for r in records):
        row = {}
        for label in trees:
            rs = [r for r in records if r["target"] == target and r["tree"] == label]
            row[f"{label}_cpu"] = round(statistics.median(r["cpu_seconds"] for r in rs), 3)
            row[f"{label}_wall"] = round(statistics.median(r["wall_seconds"] for r in rs), 3)
            row[f"{label}_digests"] = sorted({r["digest"] for r in rs})
        row["cpu_ratio_old_over_new"] = round(row["old_cpu"] / row["new_cpu"], 2)
        row["wall_ratio_old_over_new"] = round(row["old_wall"] / row["new_wall"], 2)
        row["bitwise_same_result"] = row["old_digests"] == row["new_digests"]
        summary[target] = row
    return {"command": " ".join(sys.argv), "trees": trees, "summary": summary, "records": records}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old_tree", help="checkout of the old tree (or, with --matrix, the first matrix JSON)")
    parser.add_argument("new_tree", help="checkout of the new tree (or, with --matrix, the second matrix JSON)")
    parser.add_argument("repeats", nargs="?", type=int, default=3, help="turns (default 3)")
    parser.add_argument("--matrix", action="store_true", help="compare two matrix outputs instead of timing")
    args = parser.parse_args()
    if args.matrix:
        print(json.dumps(compare_matrix(args.old_tree, args.new_tree), indent=1))
    else:
        print(json.dumps(main(args.old_tree, args.new_tree, args.repeats), indent=1))
