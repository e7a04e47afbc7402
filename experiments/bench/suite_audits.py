"""Which audits the test suite runs, what each costs, and which of them run twice: a pytest plugin and its summary.

As a plugin, it wraps the public audits of :mod:`kerneltheory.testing` (``check_feature_map``, ``check_attention``,
``verify_estimator``, ``proportional_check``, the sampler and ordering checks) before the test modules import them,
and writes one JSON line per outermost call, returning or raising, to ``$SUITE_AUDITS`` (default
``suite_audits.jsonl``, overwritten): the test that ran it, the audit, its CPU time (``time.process_time``), whether
it raised, and a digest of its result's text (``str``: a report's rows with their statistics to four digits, p-values
and effects to three, draws and seeds, and the failed and refused rows' details; the other audits' results in full
precision; an exception's type and message). Audits in child processes the tests start are not seen. Two
calls with one digest gave the same report, most often from the same work, which a fixture could share; the
summary's saving is an upper bound (inputs that give equal statistics by design also match). Then the summary reads
the file::

    SUITE_AUDITS=/tmp/audits.jsonl PYTHONPATH=experiments/bench OMP_NUM_THREADS=1 \\
        python -m pytest -q -p no:cacheprovider -p suite_audits
    python experiments/bench/suite_audits.py /tmp/audits.jsonl

(with ``PYTHONPATH=TREE:experiments/bench`` to measure another checkout). The summary prints the CPU time by audit
and by status, and the groups of identical reports with the time a shared fixture would save.
"""
from __future__ import annotations

import argparse
import collections
import contextvars
import functools
import hashlib
import json
import os
import sys
import time

AUDITS = ("check_feature_map", "check_attention", "proportional_check", "verify_estimator", "sampler_checks",
          "callable_sampler_checks", "variance_ordering_check", "one_over_m_check", "attention_convergence_check",
          "stabiliser_legality_check", "assert_feature_map")


def _install() -> None:
    """Wrap every audit in every imported module of the package that holds it (a call inside another audit, such
    as check_feature_map's per head, is counted in the outer one)."""
    import kerneltheory.testing as kt
    from kerneltheory.testing import adapters, attention_audit, matrix, ordering, samplers, verify  # noqa: F401

    depth: contextvars.ContextVar[int] = contextvars.ContextVar("suite_audits_depth", default=0)
    out = open(os.environ.get("SUITE_AUDITS", "suite_audits.jsonl"), "w")  # noqa: SIM115 (open for the session)

    def log(name: str, start: float, text: str, raised: bool) -> None:
        out.write(json.dumps({"test": _CURRENT[0], "audit": name, "cpu": round(time.process_time() - start, 3),
                              "raised": raised, "digest": hashlib.sha256(text.encode()).hexdigest()[:16],
                              "head": text[:120]}) + "\n")
        out.flush()

    def wrap(name, fn):
        @functools.wraps(fn)
        def audit(*args, **kwargs):
            token = depth.set(depth.get() + 1)
            start = time.process_time()
            result, raised = None, None
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # an audit that raises (assert_feature_map on a failing map) did its work
                raised = exc  # too; SystemExit from audited code included
                raise
            finally:
                depth.reset(token)  # whatever was raised: else every later call would count as nested
                if depth.get() == 0:
                    log(name, start, str(result) if raised is None else f"{type(raised).__name__}: {raised}",
                        raised is not None)
            return result

        return audit

    originals = {name: getattr(kt, name) for name in AUDITS}
    wrapped = {name: wrap(name, fn) for name, fn in originals.items()}
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("kerneltheory"):
            for name, fn in originals.items():
                if getattr(module, name, None) is fn:
                    setattr(module, name, wrapped[name])


_CURRENT: list[str | None] = [None]


def pytest_configure(config) -> None:
    _install()


def pytest_runtest_setup(item) -> None:
    _CURRENT[0] = item.nodeid


def summary(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    raised = [r for r in rows if r.get("raised")]
    print(f"{len(rows)} audits, {sum(r['cpu'] for r in rows):.1f} s of CPU; {len(raised)} of them raised, "
          f"{sum(r['cpu'] for r in raised):.1f} s")
    cpu, calls = collections.Counter(), collections.Counter()
    for r in rows:
        cpu[r["audit"]] += r["cpu"]
        calls[r["audit"]] += 1
    for name, seconds in cpu.most_common():
        print(f"  {seconds:7.1f} s  {calls[name]:5d} calls  {name}")
    status = collections.Counter()
    for r in rows:
        if r["audit"] in ("check_feature_map", "check_attention") and not r.get("raised"):
            status[r["head"].split(": ", 1)[1].split(" ", 1)[0]] += r["cpu"]
    print("  check_feature_map and check_attention by status: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in status.most_common()))
    groups = collections.defaultdict(list)
    for r in rows:
        groups[r["digest"]].append(r)
    repeated = sorted(((g, sum(r["cpu"] for r in g[1:])) for g in groups.values() if len(g) > 1),
                      key=lambda t: -t[1])
    print(f"{len(repeated)} groups of identical reports; sharing each would save {sum(s for _, s in repeated):.1f} s")
    for g, saved in repeated:
        print(f"  {saved:6.2f} s  ×{len(g)} ({sum(r['cpu'] for r in g):.2f} s in all)  {g[0]['audit']}: "
              f"{g[0]['head'][:70]!r}")
        for test in sorted({r["test"] for r in g}):
            print(f"           {test}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Summarise the audits a test run logged with -p suite_audits.")
    parser.add_argument("log", help="the JSON lines file the plugin wrote ($SUITE_AUDITS)")
    summary(parser.parse_args().log)
