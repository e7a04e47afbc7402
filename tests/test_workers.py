"""Experiment workers end with the process that started them (kerneltheory/_workers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = """
import os, sys, time
sys.path.insert(0, {here!r})
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from kerneltheory._workers import worker_pool
import sleeper

if __name__ == "__main__":
    pool = worker_pool(2) if sys.argv[1] == "guarded" else ProcessPoolExecutor(
        2, mp_context=multiprocessing.get_context("spawn"))
    with pool:
        futures = [pool.submit(sleeper.sleep_and_report, {here!r}, 60) for _ in range(2)]
        time.sleep(60)
"""

SLEEPER = """
import os, time
def sleep_and_report(here, t):
    open(os.path.join(here, f"pid_{os.getpid()}"), "w").close()
    time.sleep(t)
"""


def _alive(pid: int) -> bool:
    """Running or sleeping: not gone and not a zombie (a dead process its new parent has not reaped yet)."""
    try:
        state = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "Z" not in state.split()[1]


def _workers_after_parent_killed(tmp_path: Path, kind: str, wait: float) -> list[bool]:
    """Start a parent with a pool of two workers that sleep 60 s, SIGKILL it once both run, and return whether each
    worker is still alive ``wait`` seconds later (sooner once both are gone)."""
    here = tmp_path / kind
    here.mkdir()
    (here / "sleeper.py").write_text(textwrap.dedent(SLEEPER))
    (here / "parent.py").write_text(PARENT.format(here=str(here)))
    parent = subprocess.Popen([sys.executable, str(here / "parent.py"), kind], stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            pids = [int(p.name[4:]) for p in here.glob("pid_*")]
            time.sleep(0.1)
        assert len(pids) == 2, "the workers did not start"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + wait
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [_alive(p) for p in pids]
    finally:
        parent.kill()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux's")
def test_workers_die_with_a_killed_parent_and_plain_ones_did_not(tmp_path):
    """A parent killed outright (SIGKILL) leaves no worker of worker_pool running, where a plain spawned
    ProcessPoolExecutor's workers kept computing the cells they held (the control: the test can tell the two)."""
    assert _workers_after_parent_killed(tmp_path, "guarded", wait=10.0) == [False, False]
    assert _workers_after_parent_killed(tmp_path, "plain", wait=0.5) == [True, True]  # they sleep 60 s
