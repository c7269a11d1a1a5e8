"""Checking a ``--ckpt_path`` before any work: a file, readable, and a Lightning checkpoint.

``inspect_checkpoint`` reads the file's structure with ``mmap=True`` (the tensors stay on disk,
so a VGG-16 checkpoint of 500 MB costs milliseconds) and turns the ways a checkpoint goes wrong
into one-line errors that name the file and the fix: a folder, an empty or truncated file, a
plain state dict (its route is ``--model.pretrained FILE``), something else pickled. What it
returns (epoch, step, the training's hyperparameters) goes into run.json.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from errors import ConfigError, MissingFileError

LIGHTNING_VERSION_KEY = "pytorch-lightning_version"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a Lightning checkpoint says about itself (None where it does not say)."""

    path: str
    epoch: int | None = None
    global_step: int | None = None
    hyper_parameters: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """run.json's ``checkpoint``: path, epoch, global step, the training's backbone and
        pretrained source."""
        hp = self.hyper_parameters
        return {"path": self.path, "epoch": self.epoch, "global_step": self.global_step,
                "backbone": hp.get("backbone"), "pretrained": hp.get("pretrained")}


def _load_structure(path: Path) -> Any:
    """``torch.load`` without reading the tensors' bytes where the format allows it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):  # the legacy (non-zip) format cannot be memory-mapped
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def inspect_checkpoint(ckpt_path: str | Path, option: str = "--ckpt_path") -> CheckpointInfo:
    """Check that ``ckpt_path`` is a readable Lightning checkpoint; its epoch, step and hparams.

    Raises a ``ConfigError`` / ``MissingFileError`` naming the file and the fix. A file that needs
    pickled classes (not weights-only) is not refused here: Lightning decides when it loads it.
    """
    path = Path(ckpt_path).expanduser()
    given = f"{option} {ckpt_path}"
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.ckpt"))
        pick = "last.ckpt" if "last.ckpt" in found else found[-1] if found else ""
        inside = (f"; it holds {', '.join(found[:4])}: pass one, e.g. {path / pick}"
                  if found else "; pass the .ckpt file train.py wrote (E/checkpoints/last.ckpt)")
        raise ConfigError(f"{given} is a folder, not a checkpoint file{inside}.")
    if not path.is_file():
        raise MissingFileError(
            f"checkpoint {str(ckpt_path)!r} does not exist; pass the .ckpt written by train.py "
            f"(e.g. outputs/<experiment>/checkpoints/last.ckpt) as {option}.")
    if path.stat().st_size == 0:
        raise ConfigError(f"{given} is empty (0 bytes), perhaps from a save that was "
                          "interrupted; pass another checkpoint (E/checkpoints/ keeps last.ckpt "
                          "and the best ones).")
    try:
        obj = _load_structure(path)
    except pickle.UnpicklingError:
        return CheckpointInfo(str(path))  # pickled objects: Lightning's own load decides
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        # the first sentence only: torch's zip errors go on for several
        reason = (str(err).splitlines() or [type(err).__name__])[0].split(". ")[0].rstrip(".")
        raise ConfigError(f"{given} cannot be read as a checkpoint ({reason}): the file is "
                          f"truncated or was not written by torch.save ({path.stat().st_size} "
                          "bytes); pass a complete .ckpt from train.py.") from None
    if _is_state_dict(obj) or (isinstance(obj, dict) and "state_dict" in obj
                               and LIGHTNING_VERSION_KEY not in obj):
        raise ConfigError(
            f"{given} holds plain weights (a state dict), not a Lightning checkpoint of "
            f"train.py: evaluate them with --model.pretrained {ckpt_path} and no --ckpt_path "
            "(the weights are loaded into the configured backbone).")
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise ConfigError(f"{given} holds {type(obj).__name__}, not a Lightning checkpoint (a "
                          "dict with 'state_dict'); pass the .ckpt written by train.py.")
    hp = obj.get("hyper_parameters")
    epoch, step = obj.get("epoch"), obj.get("global_step")
    return CheckpointInfo(str(path), int(epoch) if isinstance(epoch, int) else None,
                          int(step) if isinstance(step, int) else None,
                          dict(hp) if isinstance(hp, dict) else {})
