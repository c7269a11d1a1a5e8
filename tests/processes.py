"""Command-line runs for the tests: a hang fails with every process's Python stack, not a bare
timeout.

A DDP run is a tree of processes (Lightning's launcher starts the other ranks, each rank its data
workers); one stuck rank keeps the output pipes open, so ``subprocess.run(timeout=...)`` ends in
``TimeoutExpired`` with nothing to go on. Here the tree gets its own process group and
``PYTHONFAULTHANDLER=1``: on a timeout the group receives SIGABRT, on which faulthandler writes
the traceback of every thread of every process to stderr, and the failure shows it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group has already exited
        os.killpg(pid, sig)


def run_cli(cmd: Sequence[str], *, cwd: str | Path, env: Mapping[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)``; a run still going after
    ``timeout`` s fails the test with the stacks of all its processes."""
    full_env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"}
    with subprocess.Popen(list(cmd), cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGABRT)  # faulthandler: every thread's stack
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
            pytest.fail(f"{' '.join(map(str, cmd[:4]))} ... still running after {timeout:.0f} s; "
                        f"its processes' stacks (SIGABRT):\n{err[-30000:]}\nstdout:\n{out[-3000:]}")
        finally:
            _signal_group(proc.pid, signal.SIGKILL)  # no stray rank or worker outlives the test
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)
