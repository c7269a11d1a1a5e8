"""Procedural fine-grained "birds", drawn in batches with tensor ops from a seeded generator.

Every image: a textured background, a body ellipse shared by all classes (random colour, position,
size), a head disc whose hue picks one of ``C / 2`` groups (the easy cue) and a wing ellipse whose
shade (light / dark, jittered) picks the class inside the group (the subtle cue). Classes ``2g`` and
``2g + 1`` are siblings: they differ only in the wing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from errors import ConfigError

PART_NAMES = ["body", "head", "wing"]
WING_SHADES = (0.60, 0.40)  # light, dark grey level of the wing
WING_JITTER = 0.05  # std of the Gaussian shade jitter: ~2 % of wings cross to the sibling


def class_names(num_classes: int) -> list[str]:
    """``group{g}_light`` / ``group{g}_dark`` for each of the ``C / 2`` groups."""
    _check_classes(num_classes)
    return [f"group{c // 2}_{'light' if c % 2 == 0 else 'dark'}" for c in range(num_classes)]


def part_attributes(num_classes: int) -> Tensor:
    """``[C, 3]`` long: body 0 for all, head = group, wing = shade (0 light, 1 dark)."""
    _check_classes(num_classes)
    c = torch.arange(num_classes)
    return torch.stack([torch.zeros_like(c), c // 2, c % 2], dim=1)


def _check_classes(num_classes: int) -> None:
    if num_classes < 2 or num_classes % 2:
        raise ConfigError(f"num_classes={num_classes} must be an even number >= 2 (sibling pairs)")


def _hsv_to_rgb(h: Tensor, s: float, v: float) -> Tensor:
    """Hue ``[N]`` in [0, 1) -> RGB ``[N, 3]``."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    return v - v * s * (torch.minimum(k, 4 - k).clamp(0, 1))


def sample_latents(n: int, generator: torch.Generator) -> dict[str, Tensor]:
    """Class-independent scene parameters for ``n`` images (each ``[n]`` or ``[n, k]``)."""
    def u(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator)

    return {
        "bg_color": 0.3 + 0.4 * u(n, 3),
        "bg_texture": u(n, 3, 8, 8),
        "body_color": 0.15 + 0.7 * u(n, 3),
        "cx": 0.38 + 0.24 * u(n), "cy": 0.45 + 0.15 * u(n),
        "a": 0.24 + 0.06 * u(n), "b": 0.16 + 0.05 * u(n),
        "facing": (u(n) < 0.5).float() * 2 - 1,  # head on the right (+1) or left (-1)
        "head_jitter": 0.04 * (u(n) - 0.5),
        "wing_jitter": WING_JITTER * torch.randn(n, generator=generator),
        "noise": u(n, 3, 16, 16),
    }


def render(latents: dict[str, Tensor], labels: Tensor, num_classes: int,
           size: int) -> tuple[Tensor, Tensor]:
    """Draw scenes: images ``[N, 3, s, s]`` float in [0, 1], part masks ``[N, 3, s, s]`` bool."""
    _check_classes(num_classes)
    n = labels.shape[0]
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = grid[:, None], grid[None, :]

    def col(v: Tensor) -> Tensor:  # [n] -> [n, 1, 1]
        return v[:, None, None]

    up = torch.nn.functional.interpolate
    img = latents["bg_color"][:, :, None, None] + 0.25 * (
        up(latents["bg_texture"], size=(size, size), mode="bilinear", align_corners=False) - 0.5)
    img = img + 0.06 * (up(latents["noise"], size=(size, size), mode="nearest") - 0.5)

    cx, cy, a, b, facing = (col(latents[k]) for k in ("cx", "cy", "a", "b", "facing"))
    body = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1
    hx, hy, hr = cx + facing * 0.85 * a, cy - 0.75 * b, 0.1
    head = (xx - hx) ** 2 + (yy - hy) ** 2 <= hr**2
    wx, wy = cx - facing * 0.15 * a, cy + 0.1 * b
    wing = ((xx - wx) / 0.13) ** 2 + ((yy - wy) / 0.085) ** 2 <= 1

    groups = labels // 2
    hue = (groups.float() / (num_classes // 2) + latents["head_jitter"]) % 1.0
    head_rgb = _hsv_to_rgb(hue, 0.9, 0.95)
    shades = torch.tensor(WING_SHADES)[labels % 2] + latents["wing_jitter"]
    wing_rgb = shades[:, None].expand(n, 3)

    def paint(canvas: Tensor, mask: Tensor, rgb: Tensor) -> Tensor:
        return torch.where(mask[:, None], rgb[:, :, None, None], canvas)

    img = paint(img, body, latents["body_color"])
    img = paint(img, head, head_rgb)
    img = paint(img, wing, wing_rgb)
    masks = torch.stack([body & ~head & ~wing, head & ~wing, wing], dim=1)
    return img.clamp(0, 1), masks


def make_scenes(n: int, num_classes: int, size: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` balanced scenes: images ``[n, 3, s, s]`` uint8, labels ``[n]``, masks ``[n, 3, s, s]``.

    Labels cycle through the classes (counts differ by at most one), then are shuffled.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    latents = sample_latents(n, g)
    chunks = []
    step = max(1, math.ceil(4096 * 64 * 64 / (size * size)))
    for i in range(0, n, step):  # bounds peak memory for large sets
        lat = {k: v[i:i + step] for k, v in latents.items()}
        chunks.append(render(lat, labels[i:i + step], num_classes, size))
    if not chunks:
        raise ConfigError(f"n={n} scenes requested; need at least one")
    imgs = torch.cat([c[0] for c in chunks])
    masks = torch.cat([c[1] for c in chunks])
    return (imgs * 255).round().to(torch.uint8), labels, masks
