"""``ExemplarBuffer``: what the exemplar figure (``results.figures.exemplar_figure_png``) needs,
collected during the test loop on the device, without host syncs and without a second pass.

It keeps the first qualifying samples (p_t2 > threshold), and per class the first ``per_class``
correctly classified samples (downscaled uint8 images + maps), both in loader order. Writes go
through slot indices; samples that do not fit go to a trash slot, so no Python branch depends on
tensor values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from results.figures import Collected
from results.schema import PAPER_CONTRASTS


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
        self.contrasts = tuple(cn for cn in PAPER_CONTRASTS if cn in available) or (
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


