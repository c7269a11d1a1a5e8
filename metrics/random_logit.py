"""Random-logit sanity check: is the map about the explained class at all?

For each sample the map of t1 (for each contrast) is compared with the map of a class ``s != t1``
drawn at random (Sixt et al. 2020; Quantus ``RandomLogit``): a map that does not change with the
class cannot say "why t1 and not the others". ``s`` comes from a generator seeded by the sample's
global dataset index (and ``seed``), so every rank and every run draws the same ``s``. Both maps
are normalised as the figures show them (upsampled to the image, divided by their max |value|)
and compared by SSIM and by Spearman rank correlation: LOWER means more class-sensitive.
``lower``: the share of samples whose SSIM for a contrast is below the original map's (the
pairs the contrast wins against ``original``).

States are per-contrast sums and a count (``dist_reduce_fx="sum"``): exact under DDP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from errors import ConfigError
from metrics.functional.similarity import figure_normalise, spearman, ssim
from results.schema import ResultKey, check_values


def draw_other(indices: Sequence[int], t1: Tensor, num_classes: int, seed: int = 0) -> Tensor:
    """A class ``s != t1`` per sample ``[B]``: uniform over the other ``C - 1`` classes, from a
    generator seeded by ``(seed, the sample's global dataset index)``; ``t1 [B]`` on its device
    (no host sync: the draw is made on the host from the indices alone)."""
    if num_classes < 2:
        raise ConfigError("the random-logit check needs at least 2 classes")
    draws = [int(torch.randint(num_classes - 1, (), generator=torch.Generator().manual_seed(
        (int(seed) << 32) + int(i)))) for i in indices]
    r = torch.tensor(draws, dtype=torch.long).to(t1.device, non_blocking=True)
    return r + (r >= t1).long()


class RandomLogit(Metric):
    """Random-logit similarity of ``method``'s maps per contrast (SSIM, Spearman; lower =
    class-sensitive), and the share of samples where a contrast's SSIM is below the original's.
    """

    full_state_update = False

    def __init__(self, method: str, contrasts: Sequence[str] = ("original", "weighted"),
                 seed: int = 0) -> None:
        super().__init__()
        self.method = method
        self.contrasts = check_values("contrast", contrasts)
        self.seed = seed
        m = len(self.contrasts)
        dtype = torch.float64
        for name in ("ssim_sum", "spearman_sum", "lower_sum"):
            self.add_state(name, torch.zeros(m, dtype=dtype), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=dtype), dist_reduce_fx="sum")

    def update(self, maps_t: Mapping[str, Tensor], maps_s: Mapping[str, Tensor],
               size: Sequence[int]) -> None:
        """maps contrast -> ``[B, h, w]`` (input space ``[B, C_in, H, W]``) for t1 and for s;
        ``size``: the image's ``(H, W)``."""
        missing = [c for c in self.contrasts if c not in maps_t or c not in maps_s]
        if missing:
            raise ConfigError(f"random-logit: maps lack contrasts {missing}")
        s_ssim, s_rank = [], []
        for c in self.contrasts:
            a = figure_normalise(maps_t[c].detach(), size)
            b = figure_normalise(maps_s[c].detach(), size)
            s_ssim.append(ssim(a, b))
            s_rank.append(spearman(a, b))
        sim = torch.stack(s_ssim).to(self.ssim_sum.dtype)  # [M, B]
        self.ssim_sum += sim.sum(dim=1)
        self.spearman_sum += torch.stack(s_rank).to(self.ssim_sum.dtype).sum(dim=1)
        if "original" in self.contrasts:
            ori = sim[self.contrasts.index("original")]
            self.lower_sum += (sim < ori).to(sim.dtype).sum(dim=1)
        self.count += sim.shape[1]

    def compute(self) -> dict[str, Tensor]:
        """``random_logit_ssim`` / ``random_logit_spearman`` per contrast (means over samples) and
        ``random_logit_lower`` per contrast other than original (when original is measured)."""
        n = self.count.clamp(min=1)
        out = {}
        for i, c in enumerate(self.contrasts):
            out[str(ResultKey("random_logit_ssim", self.method, contrast=c))] = self.ssim_sum[i] / n
            out[str(ResultKey("random_logit_spearman", self.method, contrast=c))] = (
                self.spearman_sum[i] / n)
            if c != "original" and "original" in self.contrasts:
                out[str(ResultKey("random_logit_lower", self.method, contrast=c))] = (
                    self.lower_sum[i] / n)
        return out
