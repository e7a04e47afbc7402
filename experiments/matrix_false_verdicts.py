"""How often the claim matrix gives a correct registered estimator a false verdict, over many seeds.

Run from the repository root (about 15 minutes of CPU for 81 estimators × 40 seeds, split over the workers):

    OMP_NUM_THREADS=1 python experiments/matrix_false_verdicts.py OUT.jsonl --seeds 1 41 --workers 2

It tests the ``kerneltheory`` that Python imports: the installed one (a script's own directory, not the current one,
leads ``sys.path``), so to test another checkout put its root first with ``PYTHONPATH=CHECKOUT``; each line records
the digest of the source that computed it.

Runs ``verify_estimator(name, seed=s)`` (the quick budget, α = 10⁻⁶ per estimator) for every registered estimator and
every seed in [LO, HI), one JSON line per run: each claim's verdict, and the evidence of a FAILED one. Every claim an
estimator makes is true (each has its proof), so a FAILED verdict is a false failure: the α of a report bounds its
probability by 10⁻⁶ per run where the checks' assumptions hold, and a FAILED verdict found here is a place where they do
not. A refused verdict is no pass and no failure. Lines are appended as runs finish, each with the digest of the
package's source that computed it (``kerneltheory.report.source_digest``); a rerun with the same OUT skips the
(name, seed) pairs it already holds from this source and reruns the others (lines that do not parse, such as one cut
short by a killed run, are dropped; the file is rewritten atomically first). A run that raises is recorded with its
error and counted apart. The summary of this source's runs at the seeds asked for, per claim and verdict, is printed
and written beside OUT as OUT.summary.json (atomically). A worker that dies (killed, out of memory) ends the run: the
lines already written stay, the summary of what finished is still written, and the script exits with status 1; the
same command resumes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

CLAIMS = ("unbiased", "positive", "variance", "finite")


def run(job: tuple[str, int]) -> dict:
    import torch

    torch.set_num_threads(1)
    from kerneltheory.report import source_digest
    from kerneltheory.testing import verify_estimator

    name, seed = job
    # the digest of the source this worker imported (at its first job): an edit during the run stamps its rows apart
    row = {"name": name, "seed": seed, "source": source_digest()}
    try:
        verdicts, _ = verify_estimator(name, seed=seed)
    except Exception as exc:  # recorded, not lost: the other runs go on
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    for v in verdicts:
        row[v.claim] = v.verdict
        if v.verdict == "FAILED":
            row[f"{v.claim}_evidence"] = v.evidence
    return row


def read(path: str) -> list[dict]:
    """The lines of ``path`` that parse as JSON objects (a line cut short by a killed run, or any other, is dropped;
    objects that are no run of this script are kept in the file and ignored)."""
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
    return rows


def is_run(row: dict, source: str) -> bool:
    return {"name", "seed", "source"} <= set(row) and row["source"] == source


def write_atomically(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp's 0o600 would hide the result from other users
    os.replace(tmp, path)


def summary(rows: list[dict], source: str) -> dict:
    ran = [r for r in rows if "error" not in r]
    counts = {c: collections.Counter(r[c] for r in ran) for c in CLAIMS}
    failed = [{"name": r["name"], "seed": r["seed"], "claim": c, "evidence": r[f"{c}_evidence"]}
              for r in ran for c in CLAIMS if r[c] == "FAILED"]
    return {"source": source, "runs": len(ran), "estimators": len({r["name"] for r in ran}),
            "seeds": sorted({r["seed"] for r in ran}), "verdicts": {c: dict(v) for c, v in counts.items()},
            "false_failures": failed, "errors": [{k: r[k] for k in ("name", "seed", "error")}
                                                 for r in rows if "error" in r]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="JSON-lines file, appended to and resumed from")
    parser.add_argument("--seeds", type=int, nargs=2, default=(1, 41), metavar=("LO", "HI"))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if not (0 <= args.seeds[0] < args.seeds[1]):
        parser.error(f"--seeds must be 0 ≤ LO < HI, got {args.seeds[0]} {args.seeds[1]}")
    if args.workers < 1:
        parser.error(f"--workers must be ≥ 1, got {args.workers}")
    import kerneltheory.estimators as E
    from kerneltheory.report import source_digest

    source = source_digest()
    rows = read(args.out)
    write_atomically(args.out, "".join(json.dumps(r) + "\n" for r in rows))  # the lines that parse, whole
    done = {(r["name"], r["seed"]) for r in rows if is_run(r, source) and "error" not in r}
    jobs = [(n, s) for s in range(*args.seeds) for n in E.list() if (n, s) not in done]
    broken = collect(args.out, rows, jobs, args.workers)
    source = source_digest.__wrapped__()  # the source now: rows computed before an edit are not summarised with it
    asked = set(range(*args.seeds))
    latest = {(r["name"], r["seed"]): r for r in rows if is_run(r, source) and r["seed"] in asked}  # a rerun's
    result = summary(list(latest.values()), source)
    write_atomically(args.out + ".summary.json", json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "seeds"}, indent=1))
    if broken:
        print(f"{broken}; the same command resumes", file=sys.stderr)
        sys.exit(1)


def collect(out: str, rows: list[dict], jobs: list[tuple[str, int]], workers: int) -> str:
    """Run ``jobs`` on ``workers`` processes, appending each finished run to ``rows`` and as a line to ``out`` as soon
    as it ends (a run whose worker raised outside ``run``'s own guard is recorded with its error). Returns "" or,
    when a worker died (the pool is then broken and the runs it had not finished are lost), a line saying so; every
    run that finished is kept. Leaving on another exception (Ctrl-C) cancels the runs not started."""
    from kerneltheory.report import source_digest

    lost, why = 0, ""
    with open(out, "a") as f, ProcessPoolExecutor(workers) as pool:
        try:
            futures = {pool.submit(run, job): job for job in jobs}
            for future in as_completed(futures):  # each line as soon as its run ends
                try:
                    row = future.result()
                except BrokenProcessPool as exc:
                    lost, why = lost + 1, str(exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - recorded, not lost: the other runs go on
                    name, seed = futures[future]
                    row = {"name": name, "seed": seed, "source": source_digest(),
                           "error": f"{type(exc).__name__}: {exc}"}
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return f"a worker died ({why}): {len(jobs) - lost} of {len(jobs)} runs finished and were kept" if lost else ""

if __name__ == "__main__":
    main()
