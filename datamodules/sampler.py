"""Evaluation sampler that never pads with duplicates, so DDP metrics equal one-process ones."""

from __future__ import annotations

import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, Sampler


def eval_sampler(dataset: Dataset, num_replicas: int | None = None,
                 rank: int | None = None) -> Sampler | None:
    """An ``UnrepeatedDistributedSampler`` (no shuffle) when distributed, else ``None``.

    Lightning leaves a loader alone whose sampler is already a ``DistributedSampler`` subclass, so
    each index is seen exactly once across ranks (its own default pads with duplicates).
    """
    if num_replicas is None and not (dist.is_available() and dist.is_initialized()):
        return None
    return UnrepeatedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank,
                                        shuffle=False)
