"""The figures of an evaluation, drawn from tensors on the CPU (matplotlib's Agg, no pyplot).

- ``heatmap_grid_png``: image | original, weighted for t1 | original, weighted for t2; a row a
  sample.
- ``exemplar_figure_png``: the paper's exemplar figure (App. D, Fig. 6): does the weighted map show
  what two classes differ in? For each qualifying sample (p_t2 > threshold) the image with the
  original and weighted maps for t1 and t2, and under them two correctly classified test images
  of each class with their weighted map. ``callbacks.exemplars.ExemplarBuffer`` collects its
  input (:class:`Collected`) during the test loop.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

# A bare Figure renders with Agg and leaves pyplot's global backend state alone (headless, threads).
from matplotlib.figure import Figure
from torch import Tensor

from results.schema import AXES

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
    head = f"t{rank + 1} {AXES['contrast'].title(contrast)}: {name}"
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


@dataclass
class Collected:
    """What the buffer holds, on the CPU. ``Q`` qualifying samples, ``C`` classes, ``K`` slots."""

    images: Tensor  # [Q, 3, S, S] uint8
    labels: Tensor  # [Q]
    targets: Tensor  # [Q, 2]
    probs: Tensor  # [Q, 2] softmax p_t1, p_t2
    index: Tensor  # [Q] running sample index (on this rank)
    maps: dict[str, Tensor]  # method -> [Q, M, 2, h, w] (M = the figure contrasts)
    contrasts: tuple[str, ...]
    ex_images: Tensor  # [C, K, 3, S, S] uint8
    ex_probs: Tensor  # [C, K] p of the class
    ex_index: Tensor  # [C, K]; -1: empty slot
    ex_maps: dict[str, Tensor]  # method -> [C, K, h, w], the exemplar's weighted map


def pick_exemplars(ex_index: Tensor, cls: int, exclude: int, count: int = 2) -> list[int]:
    """Slots of the first ``count`` filled exemplars of class ``cls`` other than sample
    ``exclude``. ex_index: [C, K] running sample index per slot, -1 = empty."""
    row = ex_index[cls].tolist()
    return [s for s, i in enumerate(row) if i >= 0 and i != exclude][:count]


def differ_line(
    t1: int, t2: int, part_names: Sequence[str] | None, part_attributes: Tensor | None
) -> str:
    """``"differ in: beak, wing"`` for data with several parts, else an empty string."""
    if not part_names or part_attributes is None or len(part_names) < 2:
        return ""
    differ = [n for p, n in enumerate(part_names)
              if int(part_attributes[t1, p]) != int(part_attributes[t2, p])]
    return "differ in: " + (", ".join(differ) if differ else "no annotated part")


def exemplar_figure_png(
    data: Collected,
    method: str,
    class_names: Sequence[str] | None = None,
    caption: str = "",
    part_names: Sequence[str] | None = None,
    part_attributes: Tensor | None = None,
    title: str = "",
) -> bytes:
    """One block of two rows per qualifying sample.

    Row 1: the image, then original and weighted maps for t1 and t2. Row 2: which parts t1 and
    t2 differ in (data with parts), then two correctly classified images of t1 and two of t2 with
    their weighted maps (under the maps of their class).
    """
    n = data.images.shape[0]
    maps = data.maps[method]  # [Q, M, 2, h, w]
    m = len(data.contrasts)
    per = max(m, 2)  # columns per target: its maps above, two exemplars below
    ncols = 1 + 2 * per
    rows = max(2 * n, 1)
    fig = Figure(figsize=(CELL_INCH * ncols + 0.9, CELL_INCH * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, ncols, squeeze=False)
    size = data.images.shape[-2:]
    shown = data.images.permute(0, 2, 3, 1).float().numpy() / 255
    ex_shown = data.ex_images.permute(0, 1, 3, 4, 2).float().numpy() / 255
    up = upsample(maps.flatten(1, 2), size).reshape(n, m, 2, *size).numpy() if n else None
    ex_up = upsample(data.ex_maps[method], size).numpy()  # [C, K, S, S]
    for i in range(n):  # plotting only
        top, bottom = axes[2 * i], axes[2 * i + 1]
        label = int(data.labels[i])
        t = [int(v) for v in data.targets[i]]
        draw_overlay(top[0], shown[i], None, image_title(label, class_names))
        for r in range(2):
            for ci in range(per):
                ax = top[1 + r * per + ci]
                if ci >= m:
                    ax.axis("off")
                    continue
                draw_overlay(ax, shown[i], up[i, ci, r],
                             map_title(r, data.contrasts[ci], class_name(class_names, t[r]),
                                       float(data.probs[i, r]), t[r] == label))
        bottom[0].axis("off")
        differ = differ_line(t[0], t[1], part_names, part_attributes)
        text = "correctly classified\nexemplars of t1, t2" + (f"\n\n{differ}" if differ else "")
        bottom[0].text(0.5, 0.5, text, ha="center", va="center", wrap=True,
                       fontsize=TITLE_SIZE, transform=bottom[0].transAxes)
        for r in range(2):
            slots = pick_exemplars(data.ex_index, t[r], int(data.index[i]), count=2)
            for j in range(per):
                ax = bottom[1 + r * per + j]
                if j < len(slots):
                    s = slots[j]
                    draw_overlay(ax, ex_shown[t[r], s], ex_up[t[r], s],
                                 f"{class_name(class_names, t[r])}\n"
                                 f"wtd, p_t {float(data.ex_probs[t[r], s]):.3f}")
                else:
                    ax.axis("off")
                    ax.text(0.5, 0.5, "no other correctly\nclassified image", ha="center",
                            va="center", fontsize=TITLE_SIZE, transform=ax.transAxes)
    if n == 0:
        axes[0, 0].axis("off")
        axes[0, 0].text(0.0, 0.5, "no sample qualified", fontsize=TITLE_SIZE)
        for ax in axes.flat[1:]:
            ax.axis("off")
    else:
        add_scale(fig, axes[:, 1:])
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE + 2)
    if caption:
        fig.supxlabel(caption, fontsize=TITLE_SIZE)
    return to_png(fig)


def exemplar_caption(num_figures: int, threshold: float | None, world_size: int,
                     per_class: int = 2) -> str:
    """What the figure shows and, under DDP, that it is rank zero's share of the test set."""
    which = ("test images" if threshold is None
             else f"test images with p_t2 > {threshold:g} (top-2 close)")
    text = (f"Rows: the first {num_figures} {which}; under them the first {per_class} correctly "
            "classified test images of t1 and t2 (loader order) with their weighted maps.")
    if world_size > 1:
        text += (f" Drawn on rank 0 from rank 0's share of the test set ({world_size} "
                 "processes).")
    return text

