"""Training callbacks added by train.py."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def seed_global_rngs(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (CPU and every CUDA device) with ``seed``.

    Unlike Lightning's ``seed_everything`` it leaves ``PL_GLOBAL_SEED`` alone: Lightning seeds the
    train ``DistributedSampler`` it injects from that variable whenever it builds the loader (at
    the start of a fit, and again at the start of a resumed one), so rewriting it per epoch would
    give a resumed fit another shuffling seed than the uninterrupted one.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global RNG is what gets reseeded)
    torch.manual_seed(seed)


class ReseedEachEpoch(Callback):
    """Reseed the global RNGs with ``seed + epoch`` at every train epoch start.

    The global RNGs then feed dropout (and anything else random in the training step) from a
    state that depends only on the seed and the epoch, so a fit resumed from an epoch-end
    checkpoint (``--ckpt_path last``) continues exactly like an uninterrupted fit (Lightning does
    not restore the global RNG state). The reseed comes after the resumed fit has built its data
    iterator, so the data order must not come from the global RNG at iterator creation: the
    whynot datamodules' train loader draws order and augmentation from (seed, epoch, sample)
    only (``datamodules.seeding``), and Lightning's own ``DistributedSampler`` from
    ``PL_GLOBAL_SEED`` and the epoch.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._next_epoch = 0

    def state_dict(self) -> dict[str, Any]:
        """The seed and the epoch a resumed fit starts with."""
        return {"seed": self.seed, "next_epoch": self._next_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the seed of the run being resumed."""
        self.seed = state_dict["seed"]
        self._next_epoch = state_dict["next_epoch"]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Read the run's seed (``seed_everything``; 0 without one)."""
        if self.seed is None:
            self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Seed ``torch``, ``numpy`` and ``random`` for epoch ``trainer.current_epoch``."""
        self._next_epoch = trainer.current_epoch + 1
        seed_global_rngs((self.seed or 0) + trainer.current_epoch)
