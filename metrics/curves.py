"""FaithfulnessCurves: deletion / insertion curves of every map, their AUC, SRG and wins
(docs/curves.md), as per-step sums that DDP reduces exactly."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from errors import ConfigError
from explainers.engine import result_dtype
from metrics.functional.curves import (
    CURVES,
    SCORES,
    all_curves,
    curve_aucs,
    curve_fractions,
    patch_ranks,
    run_curves,
)
from metrics.functional.perturbation import make_baselines, upsample_maps
from metrics.functional.sample_rng import sample_generator
from metrics.paired import add_paired_state, paired_results, update_paired
from results.schema import AXES, RANKS, ResultKey, check_values

# wins: the weighted map beats the original when its AUC is lower (deletion) or higher (others)
_LOWER_IS_BETTER = torch.tensor([True, False, False, False])  # deletion, lerf, insertion, srg


class FaithfulnessCurves(Metric):
    """Deletion (most / least relevant first) and insertion curves for ONE method's maps.

    For each target rank (t1, t2), baseline, contrast, curve, step and score (y_t, p_t, r_t):
    the sum over samples of the perturbed image's score (see ``metrics.functional.curves`` for
    the curves). Samples: those with clean p_t2 > ``threshold``, as in the masking tables. Maps
    are upsampled as the masking upsamples them, ranked as the equal masking ranks them (ties by
    pixel index), optionally averaged per ``patch`` x ``patch`` square. Baselines: blur, zeros,
    mean (``make_baselines``) and road (:func:`metrics.functional.road.road_impute` with noise
    ``road_noise`` times a standard normal field per sample, drawn from a generator seeded by
    ``(seed, the sample's global dataset index)``: every process draws the same noise for the
    same image, and a sample's maps, curves and steps share it, so the original and the weighted
    map are compared on the same noise).

    ``compute`` gives the mean curves, their AUC (trapezoid over the fraction perturbed; the AUC
    of the mean curve equals the mean of the samples' AUCs, the rule being linear), SRG and, where
    both 'original' and 'weighted' run, how many samples the weighted map wins. Paired
    differences: where 'original' runs, every other contrast's per-sample AUC (and SRG) is
    compared with the original's per cell (``diff_auc/.../<contrast>/<curve>/<score>/<stat>``:
    mean, standard error, 95 % interval, pairs; ``metrics.paired``), from the SUM state
    ``auc_paired`` [3, t, baseline, contrast, curve incl. srg, score].
    Forwards: ``n * len(baselines) * 2 * len(contrasts) * 2 * steps`` images per batch (insertion
    needs none of its own), in chunks of at most ``max_batch``, without gradients.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    curve_sum: Tensor
    wins: Tensor
    count: Tensor
    units: Tensor

    def __init__(
        self,
        method: str,
        contrasts: Sequence[str] = ("original", "weighted"),
        baselines: Sequence[str] = ("blur",),
        steps: int = 20,
        patch: int = 1,
        threshold: float | None = 0.1,
        max_batch: int = 256,
        road_noise: float = 0.01,
        seed: int = 0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        AXES["method"].check(method)
        self.method = method
        self.contrasts = check_values("contrast", contrasts)
        self.baselines = check_values("baseline", baselines)
        if steps < 2:
            raise ConfigError(f"curve_steps={steps}: use >= 2 (both ends are included)")
        if patch < 1:
            raise ConfigError(f"curve_patch={patch}: use a positive patch side in pixels")
        if threshold is not None and not 0.0 <= threshold < 1.0:
            raise ConfigError(f"threshold={threshold}: use a probability in [0, 1) or None for all")
        if max_batch < 1:
            raise ConfigError(f"max_batch={max_batch}: must be a positive integer")
        if road_noise < 0:
            raise ConfigError(f"road_noise={road_noise}: use a standard deviation >= 0")
        self.steps, self.patch, self.threshold = int(steps), int(patch), threshold
        self.max_batch, self.road_noise = int(max_batch), float(road_noise)
        self.seed = int(seed)
        self._host_seen = 0  # samples seen on this process: the indices when none are given
        n_b, n_c = len(self.baselines), len(self.contrasts)
        shape = (2, n_b, n_c, len(CURVES), len(SCORES), self.steps)
        self.add_state("curve_sum", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        # wins of weighted over original: [t, baseline, deletion/lerf/insertion/srg, score]
        self.add_state("wins", torch.zeros(2, n_b, len(CURVES) + 1, len(SCORES),
                                           dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("units", torch.zeros((), dtype=torch.float64), dist_reduce_fx="max")
        add_paired_state(self, "auc", (2, n_b, n_c, len(CURVES) + 1, len(SCORES)))

    def update(
        self,
        model: nn.Module,
        x: Tensor,
        maps: dict[str, Tensor],
        targets: Tensor,
        logits: Tensor,
        indices: Sequence[int] | None = None,
    ) -> None:
        """Add one batch: x [B, 3, H, W] normalised, maps contrast -> [B, 2, h, w] (or
        [B, 2, C, H, W]), targets [B, 2] (t1, t2), logits [B, C] of the clean images;
        ``indices``: the samples' global dataset indices (the ROAD noise's seeds; None: counted
        from 0 on this process, right for one process)."""
        missing = [c for c in self.contrasts if c not in maps]
        if missing:
            raise ConfigError(f"maps lack contrasts {missing}; got {sorted(maps)}")
        if indices is None:
            indices = range(self._host_seen, self._host_seen + x.shape[0])
        self._host_seen += x.shape[0]
        targets = targets[:, :2]
        maps = {c: maps[c][:, :2].detach() for c in self.contrasts}
        if self.threshold is not None:
            p2 = torch.softmax(logits.detach().float(), dim=1).gather(1, targets[:, 1:2])[:, 0]
            idx = torch.nonzero(p2 > self.threshold).flatten()  # the one host sync
            x, targets = x.index_select(0, idx), targets.index_select(0, idx)
            logits = logits.index_select(0, idx)
            maps = {c: m.index_select(0, idx) for c, m in maps.items()}
            if self._noisy_road:  # the kept samples' indices seed their noise
                indices = [indices[j] for j in idx.tolist()]
        n = x.shape[0]
        if n == 0:
            return
        size = (x.shape[-2], x.shape[-1])
        up = torch.stack([upsample_maps(maps[c], size) for c in self.contrasts], dim=2)
        ranks = patch_ranks(up, self.patch)  # [n, 2, M, U]
        units = ranks.shape[-1]
        x = x.detach().to(result_dtype(x.dtype))
        fixed = tuple(b for b in self.baselines if b != "road")
        bases = make_baselines(x, fixed) if fixed else None
        noise = self._noise_fields(indices, x) if self._noisy_road else None
        run = run_curves(model, x, ranks, targets, bases, self.baselines, self.steps,
                         self.patch, self.max_batch, self.road_noise, noise,
                         clean_logits=logits.detach())
        curves = all_curves(run).to(self.curve_sum.dtype)  # [n, n_b, 2, M, 3, S, 3]
        self.curve_sum += curves.sum(0).permute(1, 0, 2, 3, 5, 4)
        self.count += n
        self.units.fill_(units)
        if "original" in self.contrasts:
            auc = curve_aucs(curves, units)  # [n, n_b, 2, M, 3 curves, 3 scores]
            auc = torch.cat([auc, auc[..., 1:2, :] - auc[..., 0:1, :]], dim=-2)  # + srg
            # cells (t, baseline, contrast, curve, score): the layout compute indexes
            update_paired(self, "auc", auc.transpose(1, 2), 3, self.contrasts.index("original"))
        if "original" in self.contrasts and "weighted" in self.contrasts:
            ori = auc[:, :, :, self.contrasts.index("original")]
            wtd = auc[:, :, :, self.contrasts.index("weighted")]
            lower = _LOWER_IS_BETTER.to(auc.device)[:, None]
            better = torch.where(lower, wtd < ori, wtd > ori)  # [n, n_b, 2, 4, 3]
            self.wins += better.sum(0).transpose(0, 1).to(self.wins.dtype)

    @property
    def _noisy_road(self) -> bool:
        return "road" in self.baselines and self.road_noise > 0

    def reset(self) -> None:
        super().reset()
        self._host_seen = 0

    def _noise_fields(self, indices: Sequence[int], x: Tensor) -> Tensor:
        """Standard normal fields [B, C, H, W] (float32, on x's device), one per sample, each
        from a CPU generator seeded by ``(seed, global index)``: the same numbers on any process
        and device."""
        fields = [torch.randn(x.shape[1:], generator=sample_generator(self.seed, i))
                  for i in indices]
        return torch.stack(fields).to(x.device, non_blocking=True)

    def compute(self) -> dict[str, Tensor]:
        """``{result key: value}``: curve (mean per step), auc (incl. srg), auc_wins,
        curve_fraction, curve_count and diff_auc (per stat) of every contrast but the original."""
        out: dict[str, Tensor] = {}
        n, units = self.count, int(self.units)
        mean = self.curve_sum / n  # [2, n_b, M, 3 curves, 3 scores, S]
        if units > 0:
            auc = curve_aucs(mean.transpose(-1, -2), units)  # [2, n_b, M, 3, 3]
            for c in CURVES:
                for si, frac in enumerate(curve_fractions(units, self.steps)[c]):
                    key = ResultKey("curve_fraction", curve=c, point=f"p{si}")
                    out[str(key)] = frac.float()
        else:
            auc = torch.full(mean.shape[:-1], float("nan"), dtype=mean.dtype, device=mean.device)
        auc = torch.cat([auc, auc[..., 1:2, :] - auc[..., 0:1, :]], dim=-2)
        kinds = (*CURVES, "srg")
        grid = itertools.product(enumerate(RANKS), enumerate(self.baselines),
                                 enumerate(self.contrasts), enumerate(SCORES))
        for (ri, r), (bi, b), (mi, c), (si, s) in grid:
            coords = {"method": self.method, "t": r, "baseline": b, "contrast": c, "score": s}
            for ki, k in enumerate(kinds):
                out[str(ResultKey("auc", **coords, curve=k))] = auc[ri, bi, mi, ki, si].float()
                if c == "weighted" and "original" in self.contrasts:
                    out[str(ResultKey("auc_wins", **coords, curve=k))] = \
                        self.wins[ri, bi, ki, si].float()
            for ki, k in enumerate(CURVES):
                for p in range(self.steps):
                    key = ResultKey("curve", **coords, curve=k, point=f"p{p}")
                    out[str(key)] = mean[ri, bi, mi, ki, si, p].float()
        out[str(ResultKey("curve_count", self.method))] = n.float()
        if "original" in self.contrasts:
            out.update(paired_results(self, "auc", self._auc_key))
        return out

    def _auc_key(self, idx: tuple[int, ...]) -> ResultKey | None:
        """The auc key of paired cell ``idx`` = (t, baseline, contrast, curve, score); None for
        the original's own cells."""
        r, b, c, k, s = idx
        if self.contrasts[c] == "original":
            return None
        return ResultKey("auc", self.method, RANKS[r], self.baselines[b],
                         contrast=self.contrasts[c], curve=(*CURVES, "srg")[k], score=SCORES[s])
