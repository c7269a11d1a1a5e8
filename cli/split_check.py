"""Refuse to run a stage on an empty split (Lightning would skip it and report success)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from errors import ConfigError

# Lightning stage -> the split it runs on (fit: train; an empty val set only means no validation).
STAGE_SPLIT = {"fit": "train", "validate": "val", "test": "test"}


class EmptySplitError(ConfigError):
    """The split a stage runs on has no samples."""


def empty_split_reason(dm: Any, split: str) -> str:
    """Why ``dm``'s ``split`` can be empty, as far as the datamodule tells."""
    count = getattr(dm, f"num_{split}", None)
    if count is not None and count <= 0:
        return f"data.num_{split}={count}; give it a positive number of samples"
    dropped = list(getattr(dm, "_dropped", []) or [])
    if getattr(dm, "skip_corrupt", False) and dropped:
        return (f"skip_corrupt=True dropped {len(dropped)} unreadable image(s), e.g. "
                f"{dropped[0]}; the files are damaged or not images")
    if split == "val":
        return "val_fraction is 0 or the train set is too small to carve a validation set from"
    root = getattr(dm, "root", None)
    where = f" under {root}" if root is not None else ""
    return (f"the dataset's metadata{where} lists no {split} images; check that the folder is "
            "the complete dataset")


class RequireNonEmptySplit(Callback):
    """Raises ``EmptySplitError`` in ``setup`` when the stage's split has no samples.

    Runs on every rank (all hold the same dataset, so all raise), after the datamodule's setup.
    """

    def __init__(self, prog: str = "whynot") -> None:
        self.prog = prog

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Check ``datamodule.<split>_set`` where the datamodule has one."""
        stage = str(getattr(stage, "value", stage))  # Lightning passes a str enum
        split = STAGE_SPLIT.get(stage)
        dm = getattr(trainer, "datamodule", None)
        dataset = getattr(dm, f"{split}_set", None) if split else None
        if dataset is None or not hasattr(dataset, "__len__") or len(dataset) > 0:
            return
        name = getattr(dm, "name", type(dm).__name__)
        action = "evaluate" if self.prog == "evaluate.py" else stage
        raise EmptySplitError(
            f"the {split} split of {name} is empty, nothing to {action}: "
            f"{empty_split_reason(dm, split)}.")
