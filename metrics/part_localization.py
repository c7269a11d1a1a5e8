"""PartLocalization: share of a map's positive mass inside the ground-truth parts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from metrics.functional.perturbation import upsample_maps
from metrics.perturbation_score import CONTRASTS, RANKS, _check


class PartLocalization(Metric):
    """Where the positive evidence of a map for t1 / t2 lies, on data with part masks.

    For rank i with target t and the other top class s (t1 <-> t2): the differ region is the union
    of the parts whose attribute differs between t and s, the shared region the union of the parts
    whose attribute is equal. differ_share = positive mass (map.clamp(min=0), upsampled bilinearly
    with align_corners=True to the mask size) inside the differ region / total positive mass;
    shared_share likewise. A contrastive map should have a higher differ_share than the original.
    Samples with clean p_t2 <= ``threshold`` are skipped (None = all); a map with no positive mass
    is left out of its (rank, contrast) mean. ``count/<t>`` is the number of selected samples.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    differ_sum: Tensor
    shared_sum: Tensor
    valid: Tensor
    count: Tensor

    def __init__(
        self,
        contrasts: Sequence[str] = ("original", "weighted"),
        threshold: float | None = 0.1,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.contrasts = _check("contrasts", contrasts, CONTRASTS)
        if threshold is not None and not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold={threshold}: use a probability in [0, 1) or None for all")
        self.threshold = threshold
        shape = (2, len(self.contrasts))
        for name in ("differ_sum", "shared_sum", "valid"):
            self.add_state(name, torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        maps: dict[str, Tensor],
        targets: Tensor,
        logits: Tensor,
        part_masks: Tensor,
        part_attributes: Tensor,
    ) -> None:
        """maps contrast -> [B, 2, h, w]; targets [B, 2]; logits [B, C]; part_masks [B, P, H, W]
        bool; part_attributes [C, P] long (attribute id of each part for each class)."""
        missing = [c for c in self.contrasts if c not in maps]
        if missing:
            raise ValueError(f"maps lack contrasts {missing}; got {sorted(maps)}")
        if part_masks.dim() != 4 or part_attributes.shape[1] != part_masks.shape[1]:
            raise ValueError(
                f"part_masks {tuple(part_masks.shape)} must be [B, P, H, W] with P matching "
                f"part_attributes {tuple(part_attributes.shape)} [C, P]"
            )
        targets = targets[:, :2]
        up = torch.stack(
            [upsample_maps(maps[c][:, :2].detach(), tuple(part_masks.shape[-2:]))
             for c in self.contrasts],
            dim=2,
        ).clamp(min=0)  # [B, 2, M, H, W]
        if self.threshold is not None:
            p2 = torch.softmax(logits.detach().float(), 1).gather(1, targets[:, 1:])[:, 0]
            selected = p2 > self.threshold
        else:
            selected = torch.ones(targets.shape[0], dtype=torch.bool, device=targets.device)
        attr = part_attributes.to(targets.device)
        # rank 0 contrasts t1 with t2, rank 1 t2 with t1
        differ = attr[targets] != attr[targets.flip(1)]  # [B, 2, P]
        masks = part_masks.bool()[:, None]  # [B, 1, P, H, W]
        differ_region = (masks & differ[..., None, None]).any(2)  # [B, 2, H, W]
        shared_region = (masks & ~differ[..., None, None]).any(2)
        total = up.sum(dim=(-2, -1))  # [B, 2, M]
        d = (up * differ_region[:, :, None]).sum(dim=(-2, -1))
        s = (up * shared_region[:, :, None]).sum(dim=(-2, -1))
        ok = (total > 0) & selected[:, None, None]
        safe = torch.where(ok, total, torch.ones_like(total))
        self.differ_sum += torch.where(ok, d / safe, 0.0).sum(0).double()
        self.shared_sum += torch.where(ok, s / safe, 0.0).sum(0).double()
        self.valid += ok.sum(0).double()
        self.count += selected.sum().double()

    def compute(self) -> dict[str, Tensor]:
        """"differ_share/<t>/<contrast>", "shared_share/<t>/<contrast>", "count/<t>"."""
        out: dict[str, Tensor] = {}
        differ = (self.differ_sum / self.valid).float()
        shared = (self.shared_sum / self.valid).float()
        for ri, r in enumerate(RANKS):
            for ci, c in enumerate(self.contrasts):
                out[f"differ_share/{r}/{c}"] = differ[ri, ci]
                out[f"shared_share/{r}/{c}"] = shared[ri, ci]
            out[f"count/{r}"] = self.count[ri].float()
        return out
