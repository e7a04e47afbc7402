"""`kerneltheory report` of two trees in turns (order alternating), one fresh process each, from an empty --out, CPU
time of each child from getrusage(RUSAGE_CHILDREN), one thread. Run from any directory:

    python experiments/bench/report_turns.py BEFORE_TREE AFTER_TREE OUT.json [REPEATS] [BEFORE_LABEL] [AFTER_LABEL]
        [--second-run]

(trees: checkouts, e.g. ``git worktree add --detach DIR COMMIT``; labels default to "before" and "after", and name
the commits in the committed outputs). Each record: tree, repeat, CPU and wall seconds, exit status, the verdict
counts and the report's own phase timings, the load average. ``--second-run``: each report is run a second time
into the same --out right after the first (what a rerun reads back from its cache), recorded with "run": "second".
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def main(before: str, after: str, out_json: str, repeats: int = 3, labels=("before", "after"),
         second_run: bool = False) -> None:
    trees = {labels[0]: before, labels[1]: after}
    records = []
    for rep in range(repeats):
        order = list(trees.items()) if rep % 2 == 0 else list(trees.items())[::-1]
        for label, tree in order:
            out = os.path.join(tempfile.gettempdir(), "report_turns", f"{rep}_{label.split()[0]}")
            shutil.rmtree(out, ignore_errors=True)
            env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1")
            code = (f"import sys; sys.argv = ['kerneltheory', 'report', '--out', {out!r}, '--quiet']; "
                    "from kerneltheory.cli import main; main()")
            for run in ("first", "second") if second_run else ("first",):
                if os.path.exists(f"{out}/report.json"):  # a run that fails must not be read as the one before
                    os.remove(f"{out}/report.json")
                r0, w0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   cwd=tempfile.gettempdir())
                w, r1 = time.perf_counter() - w0, resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                rep_json = f"{out}/report.json"
                data = json.load(open(rep_json)) if os.path.exists(rep_json) else {}
                records.append({"tree": label, "repeat": rep, "cpu_seconds": round(cpu, 2),
                                "wall_seconds": round(w, 2), "exit": p.returncode,
                                "counts": (data.get("summary") or {}).get("counts"), "timings": data.get("timings"),
                                "loadavg": os.getloadavg(), **({"run": run} if second_run else {})})
                print(records[-1], flush=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out_json)))
    with os.fdopen(fd, "w") as f:
        json.dump(records, f, indent=1)
    os.replace(tmp, out_json)  # atomic


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before_tree")
    parser.add_argument("after_tree")
    parser.add_argument("out", help="JSON file to write (atomically)")
    parser.add_argument("repeats", nargs="?", type=int, default=3)
    parser.add_argument("before_label", nargs="?", default="before")
    parser.add_argument("after_label", nargs="?", default="after")
    parser.add_argument("--second-run", action="store_true", help="run each report again into its --out")
    a = parser.parse_args()
    main(a.before_tree, a.after_tree, a.out, a.repeats, (a.before_label, a.after_label), a.second_run)
