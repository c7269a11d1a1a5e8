"""What an offline W&B run holds, read from its ``.wandb`` file (no W&B server, no network)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest


def read_wandb_history(path: Path) -> tuple[dict[str, object], bool]:
    """Last value of every logged key (history, then summary) in an offline ``.wandb`` file, and
    whether the file already holds the run's closing ``exit`` record.

    The file is a 7-byte header, then 32 KiB blocks of records ``crc32 | length (u16 LE) | kind``
    (1 full, 2 first, 3 middle, 4 last); each joined record is a ``wandb_internal_pb2.Record``.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    pos, block, buf, values, closed = 7, 32768, b"", {}, False
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # a chunk still being written: read again later
            break
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            kind_name = record.WhichOneof("record_type")
            closed |= kind_name == "exit"
            if kind_name == "run":  # the run's identity: name, group, job type
                run = record.run
                values.update({"_run/display_name": run.display_name,
                               "_run/run_group": run.run_group, "_run/job_type": run.job_type})
            items = {"history": record.history.item, "summary": record.summary.update}
            for item in items.get(kind_name, ()):
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values, closed


def read_closed_wandb_run(run_dir: Path, timeout_s: float = 60.0) -> dict[str, object]:
    """``read_wandb_history`` of the run in ``run_dir`` once its ``exit`` record is on disk.

    CI once read a file without the final metrics right after ``finish()``; the likely cause is
    W&B's service process flushing its last block after ``finish()`` returns (not reproduced
    here), so poll until the closing record is there rather than trust the timing.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        (run_file,) = run_dir.glob("run-*.wandb")
        values, closed = read_wandb_history(run_file)
        if closed:
            return values
        if time.monotonic() > deadline:
            pytest.fail(f"{run_file} has no exit record {timeout_s:.0f} s after finish()")
        time.sleep(0.2)

