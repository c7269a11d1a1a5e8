"""Random-logit sanity check: is the map about the explained class at all?

For each sample the map of t1 (for each contrast) is compared with the map of a class ``s != t1``
drawn at random (Sixt et al. 2020; Quantus ``RandomLogit``): a map that does not change with the
class cannot say "why t1 and not the others". ``s`` comes from a generator seeded by the sample's
global dataset index (and ``seed``), so every rank and every run draws the same ``s``. Both maps
are normalised as the figures show them (upsampled to the image, divided by their max |value|)
and compared by SSIM and by Spearman rank correlation: LOWER means more class-sensitive.
``lower``: the share of samples whose SSIM for a contrast is below the original map's (the
pairs the contrast wins against ``original``). Paired differences: SSIM and Spearman of every
contrast but the original minus the original's, per sample (``diff_random_logit_ssim`` /
``diff_random_logit_spearman``: mean, standard error, 95 % interval, pairs; ``metrics.paired``).

States are per-contrast sums and a count (``dist_reduce_fx="sum"``): exact under DDP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from errors import ConfigError
from metrics.functional.sample_rng import sample_generator
from metrics.functional.similarity import figure_normalise, spearman, ssim
from metrics.paired import add_paired_state, paired_results, update_paired
from results.schema import ResultKey, check_values


def draw_other(indices: Sequence[int], t1: Tensor, num_classes: int, seed: int = 0) -> Tensor:
    """A class ``s != t1`` per sample ``[B]``: uniform over the other ``C - 1`` classes, from a
    generator seeded by ``(seed, the sample's global dataset index)``; ``t1 [B]`` on its device
    (no host sync: the draw is made on the host from the indices alone)."""
    if num_classes < 2:
        raise ConfigError("the random-logit check needs at least 2 classes")
    draws = [int(torch.randint(num_classes - 1, (), generator=sample_generator(seed, i)))
             for i in indices]
    r = torch.tensor(draws, dtype=torch.long).to(t1.device, non_blocking=True)
    return r + (r >= t1).long()


# the similarities also compared pairwise, contrast - original (diff_<q> keys)
_PAIRED = ("random_logit_ssim", "random_logit_spearman")


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
        for name in _PAIRED:
            add_paired_state(self, name, (m,))

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
        rank = torch.stack(s_rank).to(self.ssim_sum.dtype)  # [M, B]
        self.ssim_sum += sim.sum(dim=1)
        self.spearman_sum += rank.sum(dim=1)
        if "original" in self.contrasts:
            oi = self.contrasts.index("original")
            self.lower_sum += (sim < sim[oi]).to(sim.dtype).sum(dim=1)
            for name, values in zip(_PAIRED, (sim, rank), strict=True):
                update_paired(self, name, values.T, 1, oi)  # samples first: [B, M]
        self.count += sim.shape[1]

    def compute(self) -> dict[str, Tensor]:
        """``random_logit_ssim`` / ``random_logit_spearman`` per contrast (means over samples) and
        ``random_logit_lower`` and the paired ``diff_random_logit_ssim`` /
        ``diff_random_logit_spearman`` (per stat) per contrast other than original (when
        original is measured)."""
        n = self.count.clamp(min=1)
        out = {}
        for i, c in enumerate(self.contrasts):
            out[str(ResultKey("random_logit_ssim", self.method, contrast=c))] = self.ssim_sum[i] / n
            out[str(ResultKey("random_logit_spearman", self.method, contrast=c))] = (
                self.spearman_sum[i] / n)
            if c != "original" and "original" in self.contrasts:
                out[str(ResultKey("random_logit_lower", self.method, contrast=c))] = (
                    self.lower_sum[i] / n)
        if "original" in self.contrasts:
            for name in _PAIRED:
                out.update(paired_results(self, name, lambda i, q=name: self._key(q, i)))
        return out

    def _key(self, name: str, idx: tuple[int, ...]) -> ResultKey | None:
        """The key of paired cell ``idx`` = (contrast,); None for the original's own cell."""
        c = self.contrasts[idx[0]]
        return None if c == "original" else ResultKey(name, self.method, contrast=c)
