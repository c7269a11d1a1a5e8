"""One run per output folder: checked and claimed before the first batch.

Before ``Trainer.test`` starts, evaluate.py's rank zero *claims* the folder that results.json,
report.md, run.json and figures/ go to:

1. the folder is created (a regular file in its path, or no permission, is a one-line error now,
   not after the whole evaluation ran);
2. a lock file, ``.whynot.lock`` (pid, host, start time, command), is created with ``O_EXCL``: this
   is also the probe that the folder is writable. Another live run's lock is refused with a
   message naming its pid and host; a lock left by a process that no longer exists on this host
   is taken over;
3. result files of an earlier run in the folder are refused unless ``--evaluation.overwrite
   true``, which deletes them first, so the folder never holds one run's results beside
   another's figures.

The claim is released (lock removed, a folder it created and left empty removed) when the run
ends, however it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from errors import ConfigError, RunError

LOCK_FILE = ".whynot.lock"
# What one evaluation writes into its output folder (results/files.py, the callback).
RESULT_FILES = ("results.json", "run.json", "report.md", "figures")


def first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_creatable(folder: str | Path, option: str) -> None:
    """A one-line error unless ``folder`` is, or can be created as, a folder this user writes.

    Creates nothing (train.py's and the run folder's check; the evaluation's output folder is
    claimed, which probes by writing).
    """
    folder = Path(folder)
    found = first_existing(folder)
    if not found.is_dir():
        raise ConfigError(f"{option} {folder}: {found} is a file, not a folder, so nothing can "
                          f"be written under it; choose another {option}.")
    if not os.access(found, os.W_OK | os.X_OK):
        what = "folder" if found == Path(os.path.abspath(folder)) else f"folder {found} holding it"
        raise ConfigError(f"{option} {folder}: the {what} is not writable by this user; choose "
                          f"another {option} (or change the folder's permissions).")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _read_lock(path: Path) -> dict[str, object]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


class OutputClaim:
    """The claim on an output folder (a context manager); see the module docstring."""

    def __init__(self, folder: str | Path, option: str, overwrite: bool,
                 overwrite_option: str = "--evaluation.overwrite true") -> None:
        self.folder = Path(folder)
        self.option = option
        self.overwrite = overwrite
        self.overwrite_option = overwrite_option
        self.lock = self.folder / LOCK_FILE
        self._created = False
        self._held = False

    # ------------------------------------------------------------------------------- claiming
    def acquire(self) -> OutputClaim:
        """Create the folder, take the lock, clear (or refuse) an earlier run's results."""
        check_creatable(self.folder, self.option)
        self._created = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"{self.option} {self.folder}: cannot create the folder "
                              f"({err.strerror}); choose another {self.option}.") from None
        self._take_lock()
        try:
            self._clear_earlier_results()
        except BaseException:
            self.release()
            raise
        return self

    def _take_lock(self) -> None:
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.now(UTC).isoformat(timespec="seconds"),
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:500]}
        for _ in range(2):  # the second try after removing a stale lock
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                other = _read_lock(self.lock)
                if self._stale(other):
                    self.lock.unlink(missing_ok=True)
                    continue
                raise RunError(
                    f"{self.option} {self.folder} is in use by another run (pid "
                    f"{other.get('pid', '?')} on host {other.get('host', '?')}, started "
                    f"{other.get('started', '?')}): two runs in one folder would mix their "
                    f"files. Wait for it to end or choose another {self.option}; if that run "
                    f"is gone, delete {self.lock}.") from None
            except OSError as err:
                raise ConfigError(f"{self.option} {self.folder}: cannot write there "
                                  f"({err.strerror}); choose another {self.option}.") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
            self._held = True
            return
        raise RunError(f"could not take the lock {self.lock}; delete it and run again.")

    @staticmethod
    def _stale(other: dict[str, object]) -> bool:
        """A lock of a process that no longer runs on this host."""
        pid = other.get("pid")
        return (other.get("host") == socket.gethostname() and isinstance(pid, int)
                and not _pid_alive(pid))

    def _clear_earlier_results(self) -> None:
        earlier = [name for name in RESULT_FILES if (self.folder / name).exists()]
        if not earlier:
            return
        if not self.overwrite:
            raise ConfigError(
                f"{self.option} {self.folder} already holds an earlier run's results "
                f"({', '.join(earlier)}); pass {self.overwrite_option} to replace them, or "
                f"choose another {self.option}.")
        for name in earlier:
            path = self.folder / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    # ------------------------------------------------------------------------------- releasing
    def release(self) -> None:
        """Remove the lock (ours only) and the folder if this claim created it and it is empty."""
        if self._held:
            with contextlib.suppress(OSError):
                if _read_lock(self.lock).get("pid") == os.getpid():
                    self.lock.unlink()
            self._held = False
        if self._created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when empty
            self._created = False

    def __enter__(self) -> OutputClaim:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
