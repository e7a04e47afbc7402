"""Worker processes that do not outlive the process that started them.

The experiments run cells in a ``ProcessPoolExecutor`` (spawned workers). If the parent is killed outright
(``SIGKILL``, the out-of-memory killer), nothing tells its workers: each finishes the cell it holds, minutes of CPU
for results nobody will read, before it finds the pipe closed. :func:`worker_pool` starts every worker with
:func:`die_with_parent`: on Linux the kernel sends the worker ``SIGKILL`` when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls the parent's pid once a second. Results already
written by the parent (each cell is saved atomically as it arrives) are kept, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this process when ``parent_pid`` (the pool's owner) is gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:  # pragma: no cover - prctl does not fail here
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
        return

    def watch() -> None:  # pragma: no cover - not Linux
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()  # pragma: no cover - not Linux


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes, each ended by :func:`die_with_parent` when this process dies.

    Use it from the main thread: Linux sends the signal when the thread that started a worker ends, and the pool
    starts its workers from the thread that submits the first tasks."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))
