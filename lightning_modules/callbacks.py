"""Training callbacks added by train.py."""

from __future__ import annotations

import os

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

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Read the run's seed once (seeding below overwrites ``PL_GLOBAL_SEED``)."""
        if self.seed is None:
            self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Seed ``torch``, ``numpy`` and ``random`` for epoch ``trainer.current_epoch``."""
        pl_seed_everything((self.seed or 0) + trainer.current_epoch, workers=True, verbose=False)
