"""Paired-difference states for any torchmetrics ``Metric`` that compares contrasts per sample.

Three calls give a metric the spread of its "other contrast - original" comparisons::

    add_paired_state(self, "relprob", cell_shape)               # __init__: one SUM state
    update_paired(self, "relprob", values, contrast_dim, ori)   # update: per-sample values
    out.update(paired_results(self, "relprob", key_of))         # compute: diff_<q>/.../<stat>

The state ``<name>_paired`` [3, *cell] holds (Σd, Σd², n) per cell (``dist_reduce_fx="sum"``,
so DDP equals one process); ``metrics.functional.paired`` turns it into mean, se, lo, hi, n.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric

from metrics.functional.paired import paired_stats, paired_sums
from results.schema import PAIRED_STATS, ResultKey, paired_key


def add_paired_state(metric: Metric, name: str, cell_shape: tuple[int, ...],
                     dtype: torch.dtype = torch.float64) -> None:
    """Add the SUM state ``<name>_paired`` of shape [3, *cell_shape] (Σd, Σd², n)."""
    metric.add_state(f"{name}_paired", torch.zeros(3, *cell_shape, dtype=dtype),
                     dist_reduce_fx="sum")


def update_paired(metric: Metric, name: str, values: Tensor, contrast_dim: int, original: int,
                  valid: Tensor | None = None) -> None:
    """Add a batch of per-sample values [B, ...] (samples first) to ``<name>_paired``.

    Along ``contrast_dim`` (of ``values``) each contrast is paired with the one at index
    ``original``: the cell layout is ``values.shape[1:]`` (the original's own cells hold d = 0).
    ``valid`` (bool, broadcastable to ``values``): where a sample's value exists; a pair counts
    only where both of its values do.
    """
    state: Tensor = getattr(metric, f"{name}_paired")
    values = values.to(state.dtype)
    ori = values.narrow(contrast_dim, original, 1)
    if valid is not None:
        valid = valid.expand_as(values)
        valid = valid & valid.narrow(contrast_dim, original, 1)
    state += paired_sums(ori.expand_as(values), values, valid, dim=0)


def paired_results(metric: Metric, name: str,
                   key_of: Callable[[tuple[int, ...]], ResultKey | None]) -> dict[str, Tensor]:
    """``{diff key: value}`` of every cell of ``<name>_paired``: ``key_of(cell index)`` gives
    the compared value's key (its contrast the one compared with original), or None to leave the
    cell out (the original's own cells). Values are float32 scalars; NaN where undefined."""
    stats = paired_stats(getattr(metric, f"{name}_paired")).float()  # [5, *cell]
    out: dict[str, Tensor] = {}
    for idx in itertools.product(*(range(s) for s in stats.shape[1:])):
        key = key_of(idx)
        if key is None:
            continue
        for si, stat in enumerate(PAIRED_STATS):
            out[str(paired_key(key, stat))] = stats[(si, *idx)]
    return out
