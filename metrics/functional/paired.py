"""Paired differences: how sure is "the weighted map wins"? Pure tensor functions.

For a cell compared between two contrasts (``other`` minus ``original``) each sample gives one
difference d. Three sums per cell, Σd, Σd² and n, are all the statistics need; they add across
batches and DDP ranks exactly like the means' sums, so the numbers of 2 processes equal those of
one. From them:

- mean difference  ``m = Σd / n``
- standard error   ``se = s / sqrt(n)`` with the sample variance ``s² = (Σd² - n m²) / (n - 1)``
- 95 % interval    ``m ± 1.96 se`` (the normal approximation)

A cell with n = 0 has no mean (NaN); with n = 1 no spread (se, lo and hi NaN). NaN is how
"undefined" is stored in the metric's output; writers of JSON turn it into null.
"""

from __future__ import annotations

import torch
from torch import Tensor

Z95 = 1.959963984540054  # the two-sided 95 % quantile of the normal distribution


def paired_sums(original: Tensor, other: Tensor, valid: Tensor | None = None,
                dim: int = 0) -> Tensor:
    """The sums ``[3, *cell]`` = (Σd, Σd², n) of d = other - original over ``dim``.

    original, other: [..., B, ...] per-sample values of the same cells (``dim`` is B);
    valid: bool of the same shape (broadcastable), False where a sample has no pair (it is left
    out of the cell's sums and count). Sums are in the inputs' dtype (pass float64).
    """
    d = other - original
    if valid is None:
        n = torch.full_like(d.sum(dim), d.shape[dim])
    else:
        valid = valid.expand_as(d)
        d = torch.where(valid, d, torch.zeros((), dtype=d.dtype, device=d.device))
        n = valid.to(d.dtype).sum(dim)
    return torch.stack([d.sum(dim), (d * d).sum(dim), n])


def paired_stats(sums: Tensor) -> Tensor:
    """``[5, *cell]`` = (mean, se, lo, hi, n) from ``sums [3, *cell]`` (the order of
    ``results.schema.PAIRED_STATS``).

    se uses the sample standard deviation (denominator n - 1): NaN where n < 2, as are lo and hi;
    mean is NaN where n = 0. Float64 in, float64 out.
    """
    total, squares, n = sums[0], sums[1], sums[2]
    mean = total / n
    # Σd² - n m² can fall a rounding error below 0 when every d is equal
    var = ((squares - total * mean) / (n - 1)).clamp(min=0.0)
    se = torch.sqrt(var / n)
    se = torch.where(n >= 2, se, torch.full_like(se, float("nan")))
    return torch.stack([mean, se, mean - Z95 * se, mean + Z95 * se, n])

