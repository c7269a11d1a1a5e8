"""A run's result files: ``results.json`` (the flat ``eval/...`` dict) and ``run.json`` (what was
run), written atomically so that a reader never sees half a file, and strict JSON: an undefined
value (NaN) is ``null`` (``results.undefined``), which the readers here turn back into NaN."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from errors import ConfigError
from results.undefined import json_safe

RESULTS_FILE = "results.json"
RUN_FILE = "run.json"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that readers never see a half-written file (same-folder temp + replace).

    The temp file is created with mode 0666, which the kernel reduces by the umask, so the result
    has the mode a plain ``open()`` gives (``mkstemp`` would leave it 0600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_results_json(path: str | os.PathLike[str], results: Mapping[str, float]) -> None:
    """The flat results dict as JSON, keys sorted, undefined values ``null``, atomically."""
    atomic_write_text(path, json.dumps(json_safe(dict(sorted(results.items()))), indent=2,
                                       allow_nan=False) + "\n")


def read_results_json(path: str | os.PathLike[str]) -> dict[str, float]:
    """The numbers of a results.json (whynot's of any version: keys are kept as written).

    A ValueError names the file when it is not a JSON object; ``null`` (an undefined value) is
    NaN; other non-numeric entries are dropped.
    """
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: results.json is not a {{key: number}} object")
    return {str(k): math.nan if v is None else float(v) for k, v in raw.items()
            if v is None or (isinstance(v, int | float) and not isinstance(v, bool))}


def write_run_json(path: str | os.PathLike[str], info: Mapping[str, Any]) -> None:
    """run.json: the run's description (protocol version, data, model, settings), atomically."""
    atomic_write_text(path, json.dumps(json_safe(dict(info)), indent=1, sort_keys=True,
                                       allow_nan=False) + "\n")


def read_run_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A run.json as a dict; a ValueError names the file when it is not a JSON object."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: run.json is not a JSON object")
    return raw
