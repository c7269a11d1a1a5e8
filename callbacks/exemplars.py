"""The paper's exemplar figure (App. D, Fig. 6): does the weighted map show what two classes
differ in?

For each of the first ``num_figures`` samples whose top-2 classes are close (p_t2 > threshold):
the image with the original and weighted maps for t1 and t2, and under them two correctly
classified test images of each class with their weighted map for their (true, top) class.

``ExemplarBuffer`` collects what the figure needs during the test loop, on the device, without
host syncs and without a second pass: the first qualifying samples, and per class the first
``per_class`` correctly classified samples (downscaled uint8 images + maps), both in loader order.
Writes go through slot indices; samples that do not fit go to a trash slot, so no Python branch
depends on tensor values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from results.figures import (
    CELL_INCH,
    TITLE_SIZE,
    add_scale,
    class_name,
    draw_overlay,
    image_title,
    map_title,
    to_png,
    upsample,
)

FIGURE_CONTRASTS = ("original", "weighted")


def _grid(maps: Tensor, size: int) -> Tensor:
    """Maps [B, ..., h, w] (input space [B, k, C, H, W]: summed over C) at most ``size`` px a side,
    float32 (maps larger than ``size`` are average-pooled)."""
    maps = maps.detach().float()
    if maps.dim() == 5:
        maps = maps.sum(dim=2)
    if max(maps.shape[-2:]) > size:
        lead = maps.shape[:-2]
        maps = F.adaptive_avg_pool2d(maps.reshape(-1, *maps.shape[-2:]), size)
        maps = maps.reshape(*lead, size, size)
    return maps


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


class ExemplarBuffer:
    """Device buffers for the exemplar figure, filled per test batch without host syncs.

    Args:
        num_figures: qualifying samples to keep (the first ones, in loader order).
        threshold: a sample qualifies when p_t2 > threshold (None: every sample).
        mean, std: the data normalisation (images are kept de-normalised as uint8).
        per_class: correctly classified samples kept per class (one more than the figure shows,
            so a sample never serves as its own exemplar).
        image_size: images and maps are kept at most this many pixels a side.
    """

    def __init__(
        self,
        num_figures: int,
        threshold: float | None,
        mean: Sequence[float],
        std: Sequence[float],
        per_class: int = 3,
        image_size: int = 128,
    ) -> None:
        self.num_figures = num_figures
        self.threshold = threshold
        self.mean, self.std = tuple(mean), tuple(std)
        self.per_class = per_class
        self.image_size = image_size
        self.seen = 0  # samples this rank has passed (host-side: from shapes only)
        self.buffers: dict[str, Tensor] = {}
        self.contrasts: tuple[str, ...] = ()
        self.ex_contrast = "weighted"

    # ------------------------------------------------------------------------------ updating
    def _allocate(self, x: Tensor, num_classes: int, maps: Mapping[str, Mapping[str, Tensor]],
                  size: int) -> None:
        q, c, k, dev = self.num_figures + 1, num_classes, self.per_class + 1, x.device
        available = list(next(iter(maps.values())))
        self.contrasts = tuple(cn for cn in FIGURE_CONTRASTS if cn in available) or (
            available[0],)
        self.ex_contrast = "weighted" if "weighted" in available else self.contrasts[-1]
        b = {
            "images": torch.zeros(q, 3, size, size, dtype=torch.uint8, device=dev),
            "labels": torch.zeros(q, dtype=torch.long, device=dev),
            "targets": torch.zeros(q, 2, dtype=torch.long, device=dev),
            "probs": torch.zeros(q, 2, device=dev),
            "index": torch.full((q,), -1, dtype=torch.long, device=dev),
            "filled": torch.zeros((), dtype=torch.long, device=dev),
            "ex_images": torch.zeros(c, k, 3, size, size, dtype=torch.uint8, device=dev),
            "ex_probs": torch.zeros(c, k, device=dev),
            "ex_index": torch.full((c, k), -1, dtype=torch.long, device=dev),
            "ex_filled": torch.zeros(c, dtype=torch.long, device=dev),
            "classes": torch.arange(c, device=dev),
            "mean": torch.tensor(self.mean, device=dev).view(1, 3, 1, 1),
            "std": torch.tensor(self.std, device=dev).view(1, 3, 1, 1),
        }
        for method, by_contrast in maps.items():
            h, w = _grid(next(iter(by_contrast.values()))[:1], size).shape[-2:]
            b[f"maps/{method}"] = torch.zeros(q, len(self.contrasts), 2, h, w, device=dev)
            b[f"ex_maps/{method}"] = torch.zeros(c, k, h, w, device=dev)
        self.buffers = b

    def _small_images(self, x: Tensor, size: int) -> Tensor:
        """[B, 3, H, W] normalised -> [B, 3, S, S] uint8 pixels."""
        pixels = (x.detach().float() * self.buffers["std"] + self.buffers["mean"]).clamp(0, 1)
        if pixels.shape[-1] != size or pixels.shape[-2] != size:
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear",
                                   align_corners=False, antialias=True)
        return (pixels * 255).round().to(torch.uint8)

    def update(
        self,
        x: Tensor,
        labels: Tensor,
        targets: Tensor,
        probs: Tensor,
        maps: Mapping[str, Mapping[str, Tensor]],
    ) -> None:
        """x [B, 3, H, W] normalised; labels [B]; targets [B, k >= 2]; probs [B, C] softmax;
        maps: method -> contrast -> [B, k, h, w] (the figure shows "original" and "weighted"
        where present; exemplars carry their "weighted" map)."""
        if self.num_figures <= 0 or not maps:
            return
        size = min(self.image_size, x.shape[-1])
        if not self.buffers:
            self._allocate(x, probs.shape[1], maps, size)
        b, dev = x.shape[0], x.device
        buf = self.buffers
        targets = targets[:, :2]
        labels = labels.to(dev).long()
        p_top = probs.detach().float().gather(1, targets)  # [B, 2]
        small = self._small_images(x, size)
        index = torch.arange(self.seen, self.seen + b, device=dev)
        self.seen += b

        # the first num_figures qualifying samples; the rest go to the trash slot num_figures
        if self.threshold is None:
            qualifies = torch.ones(b, dtype=torch.bool, device=dev)
        else:
            qualifies = p_top[:, 1] > self.threshold
        slot = buf["filled"] + qualifies.long().cumsum(0) - 1
        keep = qualifies & (slot < self.num_figures)
        slot = torch.where(keep, slot, self.num_figures)
        buf["images"][slot] = small
        buf["labels"][slot] = labels
        buf["targets"][slot] = targets
        buf["probs"][slot] = p_top
        buf["index"][slot] = index
        buf["filled"] += keep.sum()

        # per class the first per_class correctly classified samples; trash slot per_class
        correct = targets[:, 0] == labels
        onehot = (labels[:, None] == buf["classes"]) & correct[:, None]  # [B, C]
        rank = onehot.long().cumsum(0).gather(1, labels[:, None])[:, 0] - 1
        ex_slot = buf["ex_filled"][labels] + rank
        ex_keep = correct & (ex_slot < self.per_class)
        ex_slot = torch.where(ex_keep, ex_slot, self.per_class)
        buf["ex_images"][labels, ex_slot] = small
        buf["ex_probs"][labels, ex_slot] = p_top[:, 0]
        buf["ex_index"][labels, ex_slot] = torch.where(ex_keep, index, -1)
        buf["ex_filled"].index_add_(0, labels, ex_keep.long())

        for method, by_contrast in maps.items():
            stacked = torch.stack([_grid(by_contrast[c][:, :2], size) for c in self.contrasts],
                                  dim=1)  # [B, M, 2, h, w]
            buf[f"maps/{method}"][slot] = stacked
            # rank t1 = the true class for the kept (correctly classified) samples
            own = _grid(by_contrast[self.ex_contrast][:, :1], size)[:, 0]
            buf[f"ex_maps/{method}"][labels, ex_slot] = own

    def collected(self) -> Collected | None:
        """The kept samples on the CPU (one device-to-host copy), or None if nothing was seen."""
        if not self.buffers:
            return None
        cpu = {k: v.cpu() for k, v in self.buffers.items()}
        n = int(cpu["filled"])
        k = self.per_class
        return Collected(
            images=cpu["images"][:n], labels=cpu["labels"][:n], targets=cpu["targets"][:n],
            probs=cpu["probs"][:n], index=cpu["index"][:n],
            maps={m.split("/", 1)[1]: v[:n] for m, v in cpu.items() if m.startswith("maps/")},
            contrasts=self.contrasts,
            ex_images=cpu["ex_images"][:, :k], ex_probs=cpu["ex_probs"][:, :k],
            ex_index=cpu["ex_index"][:, :k],
            ex_maps={m.split("/", 1)[1]: v[:, :k] for m, v in cpu.items()
                     if m.startswith("ex_maps/")},
        )


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

