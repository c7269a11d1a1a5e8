"""Similarity of two batches of maps, per map: SSIM and Spearman rank correlation, and the
normalisation the figures apply before showing a map.

All on tensors on the maps' device, batched over maps; no host round trip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from errors import ConfigError


def figure_normalise(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Maps as the figures show them: ``[N, h, w]`` (input space ``[N, C_in, H, W]``: summed
    over channels) upsampled bilinearly to ``size``, divided by their own max |value| ->
    ``[N, *size]`` in ``[-1, 1]`` (an all-zero map stays zero)."""
    maps = maps.float() if maps.dtype in (torch.float16, torch.bfloat16) else maps
    if maps.dim() == 4:
        maps = maps.sum(dim=1)
    up = F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    peak = up.abs().amax(dim=(-2, -1), keepdim=True)
    return up / peak.clamp(min=torch.finfo(up.dtype).tiny)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32,
                    device: torch.device | None = None) -> Tensor:
    """Normalised 2-D Gaussian window ``[size, size]``."""
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: Tensor, b: Tensor, data_range: float = 2.0, window: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Mean SSIM (Wang et al. 2004) of each pair of maps ``a, b [N, H, W]`` -> ``[N]``.

    Gaussian window (``window`` x ``window``, ``sigma``), population (co)variances, the mean over
    the positions where the window fits entirely ("valid"): scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=...)``. ``data_range`` 2: maps normalised onto ``[-1, 1]``.
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ConfigError(f"ssim takes two [N, H, W] batches, got {tuple(a.shape)} and "
                          f"{tuple(b.shape)}")
    if min(a.shape[-2:]) < window:
        raise ConfigError(f"ssim: maps {tuple(a.shape[-2:])} are smaller than the {window}-pixel "
                          "window")
    w = gaussian_window(window, sigma, a.dtype, a.device)[None, None]
    stack = torch.stack([a, b, a * a, b * b, a * b], dim=1).flatten(0, 1)[:, None]
    mu_a, mu_b, aa, bb, ab = F.conv2d(stack, w).unflatten(0, (a.shape[0], 5))[:, :, 0].unbind(1)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(-2, -1))


def average_ranks(x: Tensor) -> Tensor:
    """Ranks (1-based) of each row of ``x [N, D]``, ties sharing their mean rank (scipy's
    ``rankdata``'s "average")."""
    s = x.sort(dim=1).values
    lo = torch.searchsorted(s, x, right=False)
    hi = torch.searchsorted(s, x, right=True)
    return (lo + hi + 1).to(x.dtype) / 2


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of each pair of rows of ``a, b [N, ...]`` (flattened) -> ``[N]``.

    Pearson correlation of the average ranks; 0 where a map is constant (no ranking).
    """
    ra, rb = average_ranks(a.flatten(1).contiguous()), average_ranks(b.flatten(1).contiguous())
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    den = (ra.pow(2).sum(dim=1) * rb.pow(2).sum(dim=1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(dim=1) / den.clamp(min=1e-30), 0.0)
