"""Weights that download once: torch hub's cache, a progress bar, one process per machine.

``fetch(url, dest)`` is what ``pretrained`` names resolve to when the file is not cached yet
(torchvision weights names and ``http(s)://`` URLs; timm's tags go through Hugging Face's own
cache, see ``lightning_modules.timm_backbones``). The file is written to a temporary ``.part``
file beside ``dest`` and renamed onto ``dest`` only when complete, so an interrupted download
leaves no half file that a later run would load. Processes that start together (DDP ranks,
``torchrun``, two jobs sharing a cache) take an exclusive lock on ``dest``'s ``.lock`` file: the
first downloads, the others find the file when the lock is theirs. Under an initialised process
group rank zero of each machine downloads while the others wait at a barrier.

Offline (``HF_HUB_OFFLINE=1``, or no network) nothing is tried or the attempt fails, and the
error names what was wanted, the URL and the path where a hand-copied file would be found.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import torch

from errors import ConfigError, MissingFileError

CHUNK = 1 << 16
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
T = TypeVar("T")


def is_url(text: str) -> bool:
    """Whether ``text`` is an ``http://`` or ``https://`` URL."""
    return text.startswith(("http://", "https://"))


def offline() -> bool:
    """Whether the user asked for no network (``HF_HUB_OFFLINE=1``, Hugging Face's switch)."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in OFFLINE_ENV)


def hub_checkpoints_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``: where torchvision caches its weights files."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def url_cache_path(url: str) -> Path:
    """The cache file of ``url``: the hub checkpoints folder / the URL's file name."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ConfigError(f"pretrained URL {url!r} names no file (it ends in '/'); pass the URL "
                          "of the weights file itself")
    return hub_checkpoints_dir() / name


def _offline_error(what: str, url: str, dest: Path, reason: str) -> MissingFileError:
    return MissingFileError(
        f"pretrained weights {what} are not in the cache ({dest}) and cannot be downloaded "
        f"({reason}): fetch {url} on a machine with network and copy it to {dest}, or pass a "
        "local file path as pretrained")


def _download(url: str, dest: Path, progress: bool) -> None:
    """Stream ``url`` into a ``.part`` file beside ``dest``, then rename it onto ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            bar = _progress_bar(total, dest.name, progress)
            got = 0
            try:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
            if total is not None and got != total:
                raise ConnectionError(f"connection closed after {got} of {total} bytes")
        os.replace(part, dest)  # atomic on one file system: readers see nothing or everything
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)


def _progress_bar(total: int | None, name: str, enabled: bool) -> object:
    from tqdm import tqdm  # torch hub's progress bar; imported only when something downloads

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                disable=not enabled)


@contextlib.contextmanager
def file_lock(lock: Path) -> Iterator[None]:
    """Exclusive lock on the file ``lock`` (the processes of one machine queue on it)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def once(lock: Path, work: Callable[[], T]) -> T:
    """``work()`` on every process, one process of this machine at a time, rank zero first.

    ``work`` finds its file in the cache or downloads it; queued on ``lock`` (a file), only the
    first caller downloads and the others find the file. Under an initialised process group the
    machine's rank zero runs first while the other ranks wait at a barrier; a failure there is
    raised after the barrier, so no rank waits forever.
    """
    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    leader = not dist or int(os.environ.get("LOCAL_RANK", 0)) == 0
    result: T | None = None
    error: Exception | None = None
    if leader:
        try:
            with file_lock(lock):
                result = work()
        except Exception as err:  # re-raised below, once every rank has passed the barrier
            error = err
    if dist:
        torch.distributed.barrier()
    if error is not None:
        raise error
    if not leader:
        with file_lock(lock):
            result = work()
    return result  # type: ignore[return-value]


def fetch(url: str, dest: Path, what: str, progress: bool = True) -> Path:
    """``dest``, downloading ``url`` there first if it is missing (once per machine).

    Args:
        url: where the file comes from.
        dest: the cache file.
        what: the name the user gave (for the error message).
        progress: show a progress bar while downloading.

    Raises:
        MissingFileError: offline, or the download failed; names ``what``, ``url`` and ``dest``.
    """

    def work() -> Path:
        if dest.is_file():
            return dest
        if offline():
            raise _offline_error(what, url, dest, "HF_HUB_OFFLINE is set")
        try:
            _download(url, dest, progress)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            plain = isinstance(err, urllib.error.URLError) and not isinstance(
                err, urllib.error.HTTPError)  # "HTTP Error 404: Not Found" keeps its code
            reason = err.reason if plain else err
            raise _offline_error(what, url, dest, f"download failed: {reason}") from None
        return dest

    if dest.is_file():
        return dest
    return once(dest.parent / (dest.name + ".lock"), work)


__all__ = ["fetch", "file_lock", "hub_checkpoints_dir", "is_url", "offline", "once",
           "url_cache_path"]
