"""Pure tensor ops of the blurring / masking experiment (docs/protocol.md §2): masks, baselines."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from errors import ConfigError


def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsample maps [B, k, h, w] (or input-space [B, k, C, H, W], summed over C) to [B, k, *size].

    Bilinear with align_corners=True, as the paper's code.
    """
    if maps.dim() == 5:
        # input-space maps: a pixel's relevance is the sum over its channels
        maps = maps.sum(dim=2)
    if maps.dim() != 4:
        raise ConfigError(
            f"maps must be [B, k, h, w] or [B, k, C, H, W], got shape {tuple(maps.shape)}"
        )
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps.float()
    return F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=True)


def threshold_keep(maps: Tensor, mode: str) -> Tensor:
    """Keep-mask [...] bool: pos keeps map > 0, neg keeps map < 0 (everything else is replaced)."""
    if mode == "pos":
        return maps > 0
    if mode == "neg":
        return maps < 0
    raise ConfigError(f"mode must be 'pos' or 'neg', got {mode!r}")


def pixel_ranks(maps: Tensor) -> Tensor:
    """Rank of each pixel in its flattened map, [..., H, W] -> [..., H*W] long (0 = lowest).

    From a stable ascending sort, so ties are broken by pixel index.
    """
    flat = maps.flatten(-2)
    order = torch.sort(flat, dim=-1, stable=True).indices
    positions = torch.arange(flat.shape[-1], device=maps.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def equal_keep(maps: Tensor, mode: str, ranks: Tensor | None = None) -> Tensor:
    """Equal-masking keep-mask for maps [B, R, M, H, W] compared along dim 2 (M contrasts).

    Ranks come from a stable ascending sort of each flattened map (ties broken by pixel index);
    pass ``ranks = pixel_ranks(maps)`` to share one sort between the pos and neg masks.
    pos: k = min over the M maps of #(map > 0); the k lowest-ranked pixels of each map are replaced.
    neg: k = max over the M maps of #(map < 0); the k highest-ranked pixels are replaced.
    Exactly k pixels are replaced (the official code replaces k - 1 in neg mode; App. G words the
    rule differently, see docs/protocol.md §2.3). Returns bool [B, R, M, H, W].
    """
    b, r, m, h, w = maps.shape
    flat = maps.reshape(b, r, m, h * w)
    ranks = pixel_ranks(maps) if ranks is None else ranks
    if mode == "pos":
        k = (flat > 0).sum(-1).amin(dim=2, keepdim=True)  # [B, R, 1]
        replace = ranks < k.unsqueeze(-1)
    elif mode == "neg":
        k = (flat < 0).sum(-1).amax(dim=2, keepdim=True)
        replace = ranks >= (h * w - k).unsqueeze(-1)
    else:
        raise ConfigError(f"mode must be 'pos' or 'neg', got {mode!r}")
    return (~replace).reshape(b, r, m, h, w)


def blur_params(size: int, sigma_224: float | Tensor = 15.0) -> tuple[int, float | Tensor]:
    """Kernel size and sigma of the blur at image side ``size`` (101 / 15 at 224 px, scaled)."""
    k = round(101 * size / 224)
    k = k if k % 2 == 1 else k + 1
    k = max(3, k)
    if k >= size:
        k = size - 1 if (size - 1) % 2 == 1 else size - 2
    if k < 3:
        raise ConfigError(f"image side {size} is too small for a blur baseline (needs >= 4 px)")
    return k, sigma_224 * size / 224


def gaussian_blur(x: Tensor, kernel_size: int, sigma: float | Tensor) -> Tensor:
    """Separable Gaussian blur of x [B, C, H, W] with reflect padding; returns [B, C, H, W]."""
    half = kernel_size // 2
    t = torch.arange(kernel_size, device=x.device, dtype=x.dtype) - half
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    with torch.autocast(x.device.type, enabled=False):  # a baseline image, not model work
        out = F.pad(x, (half, half, 0, 0), mode="reflect")
        out = F.conv2d(out, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        out = F.pad(out, (0, 0, half, half), mode="reflect")
        return F.conv2d(out, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def make_baselines(
    x: Tensor, baselines: tuple[str, ...], sigma_224: float | Tensor = 15.0
) -> Tensor:
    """Replacement images [n_baselines, B, C, H, W] for x [B, C, H, W] (normalised tensor).

    blur: Gaussian blur (kernel 101, sigma 15 at 224 px, scaled with the side); zeros; mean: the
    image's own per-channel spatial mean.
    """
    out = []
    for name in baselines:
        if name == "blur":
            k, sigma = blur_params(min(x.shape[-2:]), sigma_224)
            out.append(gaussian_blur(x, k, sigma))
        elif name == "zeros":
            out.append(torch.zeros_like(x))
        elif name == "mean":
            out.append(x.mean(dim=(-2, -1), keepdim=True).expand_as(x))
        else:
            raise ConfigError(f"unknown baseline {name!r}; use 'blur', 'zeros' or 'mean'")
    return torch.stack(out)


def relative_probability(logits: Tensor, t1: Tensor, t2: Tensor, t: Tensor) -> Tensor:
    """exp(y_t) / (exp(y_t1) + exp(y_t2)) for logits [N, C] and class ids [N]; returns [N]."""
    y = logits.float()
    pair = torch.stack([y.gather(1, t1[:, None])[:, 0], y.gather(1, t2[:, None])[:, 0]], dim=1)
    yt = y.gather(1, t[:, None])[:, 0]
    return torch.exp(yt - torch.logsumexp(pair, dim=1))
