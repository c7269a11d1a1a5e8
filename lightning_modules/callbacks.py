"""Training callbacks added by train.py."""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch import seed_everything as pl_seed_everything


class ReseedEachEpoch(Callback):
    """Reseed all RNGs with ``seed + epoch`` at every train epoch start.

    The shuffling order and dropout of an epoch then depend only on the seed and the epoch, so a
    fit resumed from an epoch-end checkpoint (``--ckpt_path last``) continues exactly like an
    uninterrupted fit (Lightning does not restore the global RNG state).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._next_epoch = 0
        self._resumed = False

    def state_dict(self) -> dict[str, Any]:
        """The seed and the epoch a resumed fit starts with."""
        return {"seed": self.seed, "next_epoch": self._next_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Reseed before Lightning builds the resumed epoch's data iterator (before any hook)."""
        self.seed = state_dict["seed"]
        self._next_epoch = state_dict["next_epoch"]
        pl_seed_everything((self.seed or 0) + self._next_epoch, workers=True, verbose=False)
        self._resumed = True

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Read the run's seed once (seeding below overwrites ``PL_GLOBAL_SEED``)."""
        if self.seed is None:
            self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Seed ``torch``, ``numpy`` and ``random`` for epoch ``trainer.current_epoch``."""
        self._next_epoch = trainer.current_epoch + 1
        if self._resumed:
            # Already seeded in load_state_dict; the RNG has fed the iterator, as in a plain run.
            self._resumed = False
            return
        pl_seed_everything((self.seed or 0) + trainer.current_epoch, workers=True, verbose=False)
