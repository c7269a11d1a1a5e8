"""Evaluation sampler that never pads with duplicates, so DDP metrics equal one-process ones."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler

from errors import InputTypeError


class UnpaddedDistributedSampler(DistributedSampler):
    """Rank ``r`` of ``W`` gets indices ``r, r + W, r + 2W, ...``: every index exactly once.

    A ``DistributedSampler`` subclass, so Lightning keeps it (its own would pad with duplicates).
    Ranks may differ by one sample, and when the split has fewer samples than ranks some ranks get
    none: they contribute nothing. Lightning skips the whole evaluation loop on a rank whose loader
    has length 0 (and raises before that), so the other ranks would wait in the metrics' collectives
    at epoch end; for that case the sampler has no length on *every* rank (``len`` raises
    ``TypeError``, which Lightning reads as "unsized"), and every rank runs the loop, an empty one
    included.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False,
                         drop_last=False)
        if not isinstance(dataset, Sized):
            raise InputTypeError("UnpaddedDistributedSampler needs a dataset with __len__.")
        self.total_size = len(dataset)
        self.num_samples = len(range(self.rank, self.total_size, self.num_replicas))

    @property
    def some_rank_empty(self) -> bool:
        """True when the split has fewer samples than ranks (some ranks get none)."""
        return 0 < self.total_size < self.num_replicas

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        if self.some_rank_empty:
            raise TypeError("unsized on purpose: some ranks have no samples (see the class doc)")
        return self.num_samples


def eval_sampler(dataset: Dataset, num_replicas: int | None = None,
                 rank: int | None = None) -> Sampler | None:
    """An ``UnpaddedDistributedSampler`` when distributed (or ``num_replicas`` given), else None."""
    if num_replicas is None and not (dist.is_available() and dist.is_initialized()):
        return None
    return UnpaddedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank)
