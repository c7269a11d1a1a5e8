"""Heat-map grids: image | original, weighted for t1 | original, weighted for t2; a row a sample.

Shared drawing helpers (map overlays on a common colour scale, titles) live here too; the
exemplar figure (``callbacks/exemplars.py``) uses them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

# A bare Figure renders with Agg and leaves pyplot's global backend state alone (headless, threads).
from matplotlib.figure import Figure

from results.report import CONTRAST_TITLES

CELL_INCH = 2.0  # side of one image cell
DPI = 100
TITLE_SIZE = 9
CMAP = "bwr"


def denormalise(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """[N, 3, H, W] normalised -> [N, H, W, 3] in [0, 1] (CPU float)."""
    images = images.detach().cpu().float()  # bf16 batches (*-true precision): numpy needs fp32
    m = torch.tensor(mean, dtype=images.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * s + m).clamp(0, 1).permute(0, 2, 3, 1)


def class_name(names: Sequence[str] | None, cls: int, width: int = 26) -> str:
    """Class ``cls``'s name (its id without names), ``_`` as spaces, cut to ``width`` chars."""
    name = names[cls] if names and 0 <= cls < len(names) else str(cls)
    name = name.replace("_", " ")
    return name if len(name) <= width else name[: width - 1] + "…"


def map_title(
    rank: int, contrast: str, name: str, prob: float | None = None, is_true: bool = False
) -> str:
    """Title of a map cell: ``"t1 wtd: <class>"`` and a second line ``"p_t 0.770 (true)"``."""
    head = f"t{rank + 1} {CONTRAST_TITLES.get(contrast, contrast)}: {name}"
    tail = [] if prob is None else [f"p_t {prob:.3f}"]
    if is_true:
        tail.append("(true)")
    return head + ("\n" + " ".join(tail) if tail else "")


def image_title(label: int | None, names: Sequence[str] | None) -> str:
    """Title of the image cell: its true class."""
    return "image" if label is None else f"true: {class_name(names, label)}"


def upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Signed maps [N, k, h, w] (input space [N, k, C, H, W]: summed over C) -> [N, k, *size]."""
    maps = maps.detach().float().cpu()
    if maps.dim() == 5:
        maps = maps.sum(dim=2)
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def draw_overlay(ax: Axes, image: np.ndarray, heat: np.ndarray | None, title: str) -> None:
    """The image in grey with ``heat`` over it, scaled by its own max |value| onto [-1, 1]."""
    if heat is None:
        ax.imshow(image)
    else:
        ax.imshow(image.mean(-1), cmap="gray", vmin=0.0, vmax=1.0)
        peak = float(np.abs(heat).max())
        scaled = heat / peak if peak > 0 else heat
        ax.imshow(scaled, cmap=CMAP, vmin=-1.0, vmax=1.0, alpha=0.6)
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_xticks([])
    ax.set_yticks([])


def add_scale(fig: Figure, axes: np.ndarray) -> None:
    """One colour bar for every map: each map is divided by its own max |value|."""
    bar = fig.colorbar(ScalarMappable(norm=Normalize(-1.0, 1.0), cmap=CMAP), ax=list(axes.flat),
                       shrink=0.6, aspect=30, pad=0.01, ticks=[-1.0, 0.0, 1.0])
    bar.ax.set_yticklabels(["-max", "0", "+max"], fontsize=TITLE_SIZE)
    bar.set_label("map / its max |value|: red for the class, blue against", fontsize=TITLE_SIZE)


def to_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def heatmap_grid_png(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    targets: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    class_names: Sequence[str] | None = None,
    title: str = "",
    labels: torch.Tensor | None = None,
    probs: torch.Tensor | None = None,
) -> bytes:
    """Render a grid as PNG bytes.

    Args:
        images: [N, 3, H, W] normalised images.
        maps: contrast -> [N, k, h, w] signed maps (upsampled bilinearly to H x W here).
        targets: [N, k] class ids explained.
        mean, std: the normalisation to undo for display.
        class_names: optional names for the titles.
        title: figure title (e.g. the method).
        labels: optional [N] true classes (image titles; a map of the true class says so).
        probs: optional [N, k] softmax p_t of each target (map titles).

    Each map is shown over the de-normalised image in grey, divided by its own max |value| and
    drawn with a diverging colour map on [-1, 1] (one colour bar): red = evidence for the class,
    blue = against.
    """
    n = images.shape[0]
    shown = denormalise(images, mean, std).numpy()
    contrasts = list(maps)
    k = next(iter(maps.values())).shape[1] if maps else 0
    ncols = 1 + k * len(contrasts)
    fig = Figure(figsize=(CELL_INCH * ncols + 0.9, CELL_INCH * n + 0.5), layout="constrained")
    axes = fig.subplots(n, ncols, squeeze=False)
    up = {c: upsample(m, images.shape[-2:]).numpy() for c, m in maps.items()}
    for i in range(n):  # plotting only, not a hot path
        label = None if labels is None else int(labels[i])
        draw_overlay(axes[i, 0], shown[i], None, image_title(label, class_names))
        col = 1
        for j in range(k):
            cls = int(targets[i, j])
            prob = None if probs is None else float(probs[i, j])
            for c in contrasts:
                draw_overlay(axes[i, col], shown[i], up[c][i, j],
                             map_title(j, c, class_name(class_names, cls), prob, cls == label))
                col += 1
    if maps:
        add_scale(fig, axes[:, 1:])
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE + 2)
    return to_png(fig)
