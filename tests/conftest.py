"""Fixtures shared by the test files (the seeding fixtures come from the package's own pytest plugin)."""

import ctypes
import gc
import sys

import pytest
import torch

from kerneltheory.testing.plugin import seed_of


def _keep_freed_memory() -> None:
    """The suite's allocator settings (its CPU time, issue #16), glibc only (elsewhere nothing changes): freed memory up
    to 512 MiB stays with the process, and blocks up to 256 MiB come from the heap instead of a fresh mapping each
    time, so the many tensors of a few MiB that the tests allocate and free reuse pages instead of faulting in new
    ones. Over the whole default suite (the same settings through GLIBC_TUNABLES): 9 s of system CPU time before,
    3.3 s after, user time unchanged, peak resident size 1.4 GB against 1.3 GB (docs/benchmarks.md, "The test
    suite"). Memory claims are tested on torch's own allocation records and on sizes (tests/test_attention.py,
    tests/test_attention_chunked.py, the benchmarks' memory caps), which these settings do not change; the resident-size
    reading of ``bench.peak_memory`` would see the retained pages, and no test asserts on its value."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt  # a C library without mallopt: nothing changes
    except (OSError, AttributeError, TypeError):
        return
    for param, value in ((-3, 256 << 20), (-1, 512 << 20), (-2, 64 << 20)):  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD,
        mallopt(param, value)  # M_TOP_PAD (malloc.h)


_keep_freed_memory()


def pytest_collection_finish(session):
    """The suite's garbage-collector settings (its CPU time, issue #16; the package's pytest plugin leaves a user's
    settings alone). The ~400 000 objects that exist once the tests are collected (imported modules, sympy's and
    torch's tables) live to the end of the run, so they are frozen out of every later collection; and a full
    collection waits for 1000 young-generation collections instead of 10. Cyclic garbage that reaches the old
    generation is freed at the next full collection or at exit (pytest's own collections at the end of the session);
    the young generations still free the short-lived cycles. Measured over the whole default suite with a
    ``gc.callbacks`` timer: 8.2 s of collection before, 3.8 s after (docs/benchmarks.md, "The test suite"), with a
    peak resident size of 1.3 GB against 1.0 GB."""
    gc.freeze()
    gc.set_threshold(700, 10, 1000)


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread avoids the overhead and oversubscription of a shared machine (the
    results are statistical or exact and do not depend on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_seed(request):
    """``shared_seed(name)``: the seed of a computation shared by several tests through a module- or session-scoped
    fixture (kt_seed is per test): CRC-32 of ``name`` under the run's base seed, so ``--kt-seed`` draws it afresh
    and replays it as it does every kt_seed."""
    return lambda name: seed_of(request.config, name)


#: the node id of the claim matrix's row of an estimator: its kt_seed is the row's seed
MATRIX_ROW = "tests/test_claim_matrix.py::test_claim_matrix_row[{}]"


@pytest.fixture(scope="session")
def matrix_row(shared_seed):
    """``matrix_row(name)``: ``(verdicts, report)`` of the claim matrix's row of ``name``,
    ``verify_estimator(name, seed=...)`` at the quick budget with the row's kt_seed, computed once per session.
    The row's test (tests/test_claim_matrix.py) asserts its verdicts; tests of other properties of the same run
    (the float32 evaluation's agreement with it, the method its checks use) read it instead of running it again."""
    from kerneltheory.testing.matrix import verify_estimator

    rows = {}

    def row(name: str):
        if name not in rows:
            rows[name] = verify_estimator(name, seed=shared_seed(MATRIX_ROW.format(name)))
        return rows[name]

    return row


@pytest.fixture(scope="session")
def small_report(tmp_path_factory):
    """``(result, folder)`` of ``run_report`` for positive/gaussian with tests/test_report.py's small sweep, run once
    per session. Tests read it (tests/test_report_browser.py loads its page in a browser); a test that writes
    into a report (a resumed run) copies the folder first."""
    from test_report import small_figure

    from kerneltheory.report import run_report

    out = tmp_path_factory.mktemp("small_report") / "rep"
    res = run_report(out, names=["positive/gaussian"], variance=True, variance_configs=[small_figure()],
                     progress=False)
    return res, out


REPORT_NAMES = ("positive/gaussian", "trig/sorf", "elu")


@pytest.fixture(scope="session")
def cli_report(tmp_path_factory):
    """``(exit status, folder)`` of ``kerneltheory report --only positive/gaussian trig/sorf elu --quiet``, run once
    per session through the command's ``main``. tests/test_cli.py checks the command (and resumes it on a copy of
    the folder); tests/test_report.py checks the HTML page it wrote."""
    from kerneltheory.cli import main

    out = tmp_path_factory.mktemp("cli_report") / "rep"
    return main(["report", "--out", str(out), "--only", *REPORT_NAMES, "--quiet"]), out
