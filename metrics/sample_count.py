"""SampleCount: how many samples a run saw, summed across DDP ranks."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class SampleCount(Metric):
    """The number of samples passed to ``update`` (all ranks together after ``compute``).

    ``update`` adds the batch size as a Python number to a device state: no host sync, no copy.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    count: Tensor

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, batch: Tensor) -> None:
        """batch: any tensor whose first dimension is the batch, e.g. the labels [B]."""
        self.count += batch.shape[0]

    def compute(self) -> Tensor:
        """The count as a float32 scalar."""
        return self.count.float()
