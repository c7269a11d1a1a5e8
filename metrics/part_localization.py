"""PartLocalization: where the positive evidence of a map lies on ground-truth parts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from errors import ConfigError
from metrics.functional.localization import mass_share, pair_regions, pointing_hits
from metrics.functional.perturbation import upsample_maps
from metrics.paired import add_paired_state, paired_results, update_paired
from results.schema import AXES, RANKS, ResultKey, check_values

# state name -> quantity of compute(); all are per-sample sums of [2 ranks, M contrasts]
_SUMS = {
    "differ_sum": "differ_share",
    "shared_sum": "shared_share",
    "point_differ_sum": "pointing_differ",
    "point_shared_sum": "pointing_shared",
}


class PartLocalization(Metric):
    """Where the positive evidence of a map for t1 / t2 lies, on data with part masks.

    For rank i with target t and the other top class s (t1 <-> t2): the differ region is the union
    of the parts whose attribute differs between t and s, the shared region the union of the parts
    whose attribute is equal. Each map is clamped at 0 and upsampled bilinearly
    (align_corners=True) to the mask size.

    - ``differ_share`` / ``shared_share``: positive mass inside the differ / shared region over
      the map's total positive mass (the rest lies outside the annotated parts).
    - ``pointing_differ`` / ``pointing_shared``: the pointing game, the share of samples whose
      map maximum lies in the differ / shared region.

    A class-contrastive map should raise the differ and lower the shared numbers. Samples with
    clean p_t2 <= ``threshold`` are skipped (None = all); a map with no positive mass is left out
    of its (rank, contrast) means. ``count/<t>`` is the number of selected samples. States are
    per-sample sums (``dist_reduce_fx="sum"``), so DDP gives the numbers of one process.

    Paired differences: each quantity of every contrast but the original minus the original's,
    per sample with both maps valid (``diff_<quantity>/<method>/<t>/<contrast>/<stat>``: mean,
    standard error, 95 % interval, pairs; ``metrics.paired``), from SUM states.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    differ_sum: Tensor
    shared_sum: Tensor
    point_differ_sum: Tensor
    point_shared_sum: Tensor
    valid: Tensor
    count: Tensor

    def __init__(
        self,
        method: str,
        contrasts: Sequence[str] = ("original", "weighted"),
        threshold: float | None = 0.1,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        AXES["method"].check(method)
        self.method = method
        self.contrasts = check_values("contrast", contrasts)
        if threshold is not None and not 0.0 <= threshold < 1.0:
            raise ConfigError(f"threshold={threshold}: use a probability in [0, 1) or None for all")
        self.threshold = threshold
        shape = (2, len(self.contrasts))
        for name in (*_SUMS, "valid"):
            self.add_state(name, torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        for name in _SUMS.values():
            add_paired_state(self, name, shape)

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
            raise ConfigError(f"maps lack contrasts {missing}; got {sorted(maps)}")
        if part_masks.dim() != 4 or part_attributes.shape[1] != part_masks.shape[1]:
            raise ConfigError(
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
        differ, shared = pair_regions(part_masks, part_attributes, targets)
        total = up.sum(dim=(-2, -1))  # [B, 2, M]
        ok = (total > 0) & selected[:, None, None]
        safe = torch.where(ok, total, torch.ones_like(total))
        values = {
            "differ_sum": mass_share(up, differ, safe),
            "shared_sum": mass_share(up, shared, safe),
            "point_differ_sum": pointing_hits(up, differ),
            "point_shared_sum": pointing_hits(up, shared),
        }
        for name, v in values.items():
            state = getattr(self, name)
            state += torch.where(ok, v.to(state.dtype), 0.0).sum(0)
        self.valid += ok.sum(0).to(self.valid.dtype)
        if "original" in self.contrasts:  # [B, 2, M] per sample, pairs where both maps count
            ori = self.contrasts.index("original")
            for name, q in _SUMS.items():
                update_paired(self, q, values[name], 2, ori, valid=ok)
        self.count += selected.sum().to(self.count.dtype)

    def compute(self) -> dict[str, Tensor]:
        """``{result key: value}`` (``results.schema``): differ_share, shared_share,
        pointing_differ and pointing_shared per (t, contrast), count per t, and their diff_<q>
        per cell of every contrast but the original (per stat)."""
        out: dict[str, Tensor] = {}
        for name, q in _SUMS.items():
            mean = (getattr(self, name) / self.valid).float()
            for ri, r in enumerate(RANKS):
                for ci, c in enumerate(self.contrasts):
                    out[str(ResultKey(q, self.method, r, contrast=c))] = mean[ri, ci]
        for ri, r in enumerate(RANKS):
            out[str(ResultKey("count", self.method, r))] = self.count[ri].float()
        if "original" in self.contrasts:
            for q in _SUMS.values():
                out.update(paired_results(self, q, lambda i, q=q: self._cell_key(q, i)))
        return out

    def _cell_key(self, name: str, idx: tuple[int, ...]) -> ResultKey | None:
        """The key of state cell (rank, contrast); None for the original's own cells."""
        r, c = idx
        if self.contrasts[c] == "original":
            return None
        return ResultKey(name, self.method, RANKS[r], contrast=self.contrasts[c])
