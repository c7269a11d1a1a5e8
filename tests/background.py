"""Command-line runs that the fast suite starts at the beginning and checks at the end.

Every ``python train.py`` / ``evaluate.py`` process spends about 13 s of CPU importing torch,
torchvision, torchmetrics and Lightning on the 2-core test machine, before any work; a 2-process
DDP run pays it twice. Run one after the other, the suite's few real processes would take longer
than all its other tests together. So a test that needs one asks for a fixture from ``JOBS``
(``conftest.py`` starts every such fixture as soon as the tests are collected, in a thread each)
and is ordered last, by which time the processes have run beside the in-process tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

# Session fixtures whose value is a :class:`Job`; tests that use one run at the end.
JOBS = ("ddp_fit_and_resume", "ddp_evaluation", "exit_code_runs")
NICENESS = 10


class Job:
    """One background job: ``result()`` waits for it and returns what the function returned."""

    _pool = ThreadPoolExecutor(max_workers=len(JOBS), thread_name_prefix="whynot-test-job")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._future: Future = self._pool.submit(_niced, fn)

    def result(self) -> Any:
        """The job's value (re-raises its exception in the test that asks)."""
        return self._future.result()

    def result_or_none(self) -> Any:
        """The job's value once it ended, or None if it failed (nobody asked: no test needs it)."""
        try:
            return self._future.result()
        except Exception:
            return None


def _niced(fn: Callable[[], Any]) -> Any:
    """``fn()`` from a thread of lower priority, which the processes it starts inherit: the
    in-process tests, the suite's longest chain, keep a core to themselves."""
    with contextlib.suppress(OSError, AttributeError):  # Linux: priority is per thread
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    return fn()


def completed(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    """``proc`` if it exited 0, else an AssertionError with the end of its stderr."""
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc
