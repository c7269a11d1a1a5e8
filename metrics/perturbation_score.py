"""PerturbationScore: the paper's blurring / masking experiment (Tables 1-3; docs/protocol.md
§2)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from errors import ConfigError
from explainers.engine import input_dtype, result_dtype
from metrics.functional.perturbation import (
    equal_keep,
    make_baselines,
    pixel_ranks,
    relative_probability,
    threshold_keep,
    upsample_maps,
)
from metrics.paired import add_paired_state, paired_results, update_paired
from results.schema import AXES, BASELINES, MASKINGS, MODES, RANKS, ResultKey, check_values

# the per-sample values that are also compared pairwise, contrast - original (diff_<q> keys)
_PAIRED = ("relprob", "prob")


def _chunks(n: int, per_image: int, max_batch: int) -> list[tuple[int, int, slice]]:
    """Forward batches of at most ``max_batch`` rows: (first image, end image, rows of the block).

    Whole images' blocks of ``per_image`` rows when one fits, else slices of one image's block.
    """
    if max_batch >= per_image:
        step = max_batch // per_image
        return [(i, min(i + step, n), slice(None)) for i in range(0, n, step)]
    starts = range(0, per_image, max_batch)
    return [(i, i + 1, slice(r, r + max_batch)) for i in range(n) for r in starts]


class PerturbationScore(Metric):
    """Model output on images whose pixels outside the pos / neg region of a map are replaced.

    For ONE explanation method (``method`` names it in the result keys): for each target rank
    (t1, t2 = top-2 clean predictions), baseline, mode, masking and contrast, the mean over selected
    samples of the relative probability exp(y_t) / (exp(y_t1) + exp(y_t2)) of the perturbed image
    (the paper's number), its softmax p_t and the drop clean p_t - perturbed p_t. Samples are
    those with clean p_t2 > ``threshold``.

    Threshold masking: pos keeps map > 0, neg keeps map < 0. Equal masking (docs/protocol.md
    §2.3): the compared contrasts' maps of an image and rank replace the same number k of pixels:
    pos replaces the k lowest-ranked with k = min of their positive counts, neg the k
    highest-ranked with k = max of their negative counts. We replace exactly k; the official code
    replaces k - 1 in neg mode, and App. G words the rule differently. Maps are upsampled
    bilinearly (align_corners=True); input-space maps [B, k, C, H, W] are summed over C. Baselines
    act on the normalised tensor.

    ``sigma_range=(lo, hi)`` (at 224 px) draws the blur sigma per update from a generator seeded by
    ``seed``, like the original code; it breaks exact equality between DDP and one process.
    States are sums, so DDP reduction is exact. Means over zero samples are NaN.

    Paired differences: for relprob and prob, every contrast other than ``original`` is
    compared with it per sample and cell (``diff_<q>/.../<contrast>/<stat>``: mean, standard
    error, 95 % interval, pairs; ``metrics.paired``), from the SUM states ``<q>_paired``.

    Perturbed images go through the model in batches of at most ``max_batch``: as many whole
    images' blocks (48 rows per image with the defaults) as fit, else slices of one image's block.
    Each block is one broadcast ``torch.where`` of the keep-masks, the image and its baselines.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    relprob_sum: Tensor
    prob_sum: Tensor
    prob_drop_sum: Tensor
    clean_relprob_sum: Tensor
    clean_prob_sum: Tensor
    count: Tensor

    def __init__(
        self,
        method: str,
        contrasts: Sequence[str] = ("original", "weighted"),
        baselines: Sequence[str] = BASELINES,
        modes: Sequence[str] = MODES,
        maskings: Sequence[str] = MASKINGS,
        threshold: float | None = 0.1,
        sigma_range: tuple[float, float] | None = None,
        max_batch: int = 256,
        seed: int = 0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        AXES["method"].check(method)
        self.method = method
        self.contrasts = check_values("contrast", contrasts)
        self.baselines = check_values("baseline", baselines)
        if "road" in self.baselines:
            raise ConfigError("baseline 'road' is a curves baseline (curve_baselines); the "
                              "masking uses 'blur', 'zeros' or 'mean'")
        self.modes = check_values("mode", modes)
        self.maskings = check_values("masking", maskings)
        if threshold is not None and not 0.0 <= threshold < 1.0:
            raise ConfigError(f"threshold={threshold}: use a probability in [0, 1) or None for all")
        if sigma_range is not None and not 0 < sigma_range[0] <= sigma_range[1]:
            raise ConfigError(f"sigma_range={sigma_range}: use (lo, hi) with 0 < lo <= hi")
        if max_batch < 1:
            raise ConfigError(f"max_batch={max_batch}: must be a positive integer")
        self.threshold = threshold
        self.sigma_range = sigma_range
        self.max_batch = int(max_batch)
        self._generator = torch.Generator().manual_seed(seed)
        shape = (2, len(self.baselines), len(self.modes), len(self.maskings), len(self.contrasts))
        for name in ("relprob_sum", "prob_sum", "prob_drop_sum"):
            self.add_state(name, torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("clean_relprob_sum", "clean_prob_sum"):
            self.add_state(name, torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        for name in _PAIRED:
            add_paired_state(self, name, shape)

    def _keep_masks(self, up: Tensor) -> Tensor:
        """Keep-masks [n, 2, n_modes, n_maskings, M, H, W] from upsampled maps [n, 2, M, H, W]."""
        ranks = pixel_ranks(up) if "equal" in self.maskings else None  # one sort for pos and neg
        per_mode = []
        for mode in self.modes:
            per_masking = []
            for masking in self.maskings:
                if masking == "threshold":
                    per_masking.append(threshold_keep(up, mode))
                else:
                    per_masking.append(equal_keep(up, mode, ranks))
            per_mode.append(torch.stack(per_masking, dim=2))
        return torch.stack(per_mode, dim=2)

    def update(
        self, model: nn.Module, x: Tensor, maps: dict[str, Tensor], targets: Tensor, logits: Tensor
    ) -> None:
        """Add one batch: x [B, 3, H, W] normalised, maps contrast -> [B, 2, h, w], targets [B, 2]
        (t1, t2), logits [B, C] of the clean images. ``model`` is used as given (eval mode)."""
        missing = [c for c in self.contrasts if c not in maps]
        if missing:
            raise ConfigError(f"maps lack contrasts {missing}; got {sorted(maps)}")
        if targets.dim() != 2 or targets.shape[1] < 2:
            raise ConfigError(f"targets must be [B, 2] (t1, t2), got shape {tuple(targets.shape)}")
        targets = targets[:, :2]
        probs = torch.softmax(logits.detach().float(), dim=1)
        clean_p = probs.gather(1, targets)  # [B, 2]
        maps = {c: maps[c][:, :2].detach() for c in self.contrasts}
        if self.threshold is not None:
            # the one host sync of an update: how many samples (hence forwards) follow
            idx = torch.nonzero(clean_p[:, 1] > self.threshold).flatten()
            x, targets, clean_p, logits = (
                t.index_select(0, idx) for t in (x, targets, clean_p, logits)
            )
            maps = {c: m.index_select(0, idx) for c, m in maps.items()}
        n = x.shape[0]
        if n == 0:
            return
        t1, t2 = targets[:, 0], targets[:, 1]
        clean_rel = torch.stack(
            [relative_probability(logits, t1, t2, t1), relative_probability(logits, t1, t2, t2)], 1
        )
        acc = self.relprob_sum.dtype  # float64, float32 where the device has no float64
        self.clean_relprob_sum += clean_rel.sum(0).to(acc)
        self.clean_prob_sum += clean_p.sum(0).to(acc)
        self.count += n

        size = (x.shape[-2], x.shape[-1])
        up = torch.stack([upsample_maps(maps[c], size) for c in self.contrasts], dim=2)
        # [n, 2, M, H, W]
        keep = self._keep_masks(up)  # [n, 2, n_mo, n_mk, M, H, W]
        sigma: float | Tensor = 15.0
        if self.sigma_range is not None:
            lo, hi = self.sigma_range
            sigma = lo + (hi - lo) * torch.rand((), generator=self._generator, dtype=torch.float32)
            sigma = sigma.to(x.device)
        # Images, baselines and compositions in float32 whatever the model's precision; they are
        # cast to the model's dtype where they enter it.
        x = x.detach().to(result_dtype(x.dtype))
        base = make_baselines(x, self.baselines, sigma)  # [n_b, n, C, H, W]

        n_b, n_mo, n_mk, n_c = base.shape[0], keep.shape[2], keep.shape[3], keep.shape[4]
        n_k = 2 * n_mo * n_mk * n_c  # keep-masks per image: (rank, mode, masking, contrast)
        per_image = n_b * n_k
        keep = keep.reshape(n, 1, n_k, 1, *size)
        # Rows of one image's block, in the order (baseline, rank, mode, masking, contrast): the
        # order torch.where below lays them out in by broadcasting, so nothing is gathered.
        row = torch.arange(per_image, device=x.device)
        row_rank = (row % n_k) // (n_k // 2)
        row_state = row_rank * (per_image // 2) + (row // n_k) * (n_k // 2) + row % (n_k // 2)
        sums = torch.zeros(3, per_image, dtype=acc, device=x.device)
        base = base.transpose(0, 1).unsqueeze(2)  # [n, n_b, 1, C, H, W]
        # per-sample (relprob, p) of every state cell, for the paired differences
        per_sample = torch.zeros(2, n, per_image, dtype=acc, device=x.device)
        dtype = input_dtype(model)
        block, block_of = x, (-1, -1)
        with torch.no_grad():
            for i0, i1, rows in _chunks(n, per_image, self.max_batch):
                if block_of != (i0, i1):  # an image's block is built once even when sliced
                    # out= keeps it contiguous (broadcast inputs would give it their odd strides,
                    # and flattening would then copy it)
                    block = x.new_empty(i1 - i0, n_b, n_k, *x.shape[1:])
                    torch.where(keep[i0:i1], x[i0:i1, None, None], base[i0:i1], out=block)
                    block, block_of = block.flatten(0, 2), (i0, i1)  # [rows, C, H, W]
                pert = block[rows]
                i = torch.arange(i0, i1, device=x.device).repeat_interleave(per_image)[rows]
                r = row_rank.repeat(i1 - i0)[rows]
                out = model(pert.to(dtype)).float()
                t = targets[i, r]
                rel = relative_probability(out, t1[i], t2[i], t)
                p = torch.softmax(out, dim=1).gather(1, t[:, None])[:, 0]
                drop = clean_p[i, r] - p
                vals = torch.stack([rel, p, drop]).to(acc)
                cells = row_state.repeat(i1 - i0)[rows]
                sums.index_add_(1, cells, vals)
                per_sample[:, i, cells] = vals[:2]
        shape = self.relprob_sum.shape
        self.relprob_sum += sums[0].view(shape)
        self.prob_sum += sums[1].view(shape)
        self.prob_drop_sum += sums[2].view(shape)
        if "original" in self.contrasts:
            ori = self.contrasts.index("original")
            for qi, name in enumerate(_PAIRED):
                update_paired(self, name, per_sample[qi].view(n, *shape), len(shape), ori)

    def compute(self) -> dict[str, Tensor]:
        """``{result key: value}`` (``results.schema``): relprob, prob and prob_drop per
        (t, baseline, mode, masking, contrast), clean_relprob and clean_prob per t, count, and
        diff_relprob / diff_prob per cell of every contrast but the original (and per stat)."""
        out: dict[str, Tensor] = {}
        n = self.count
        grid = itertools.product(enumerate(RANKS), enumerate(self.baselines),
                                 enumerate(self.modes), enumerate(self.maskings),
                                 enumerate(self.contrasts))
        means = {q: (s / n).float() for q, s in (("relprob", self.relprob_sum),
                                                ("prob", self.prob_sum),
                                                ("prob_drop", self.prob_drop_sum))}
        for (ri, r), (bi, b), (moi, mo), (mki, mk), (ci, c) in grid:
            for q, mean in means.items():
                key = ResultKey(q, self.method, r, b, mo, mk, c)
                out[str(key)] = mean[ri, bi, moi, mki, ci]
        for ri, r in enumerate(RANKS):
            out[str(ResultKey("clean_relprob", self.method, r))] = \
                (self.clean_relprob_sum[ri] / n).float()
            out[str(ResultKey("clean_prob", self.method, r))] = \
                (self.clean_prob_sum[ri] / n).float()
        out[str(ResultKey("count", self.method))] = n.float()
        if "original" in self.contrasts:
            for name in _PAIRED:
                out.update(paired_results(self, name, lambda i, q=name: self._cell_key(q, i)))
        return out

    def _cell_key(self, name: str, idx: tuple[int, ...]) -> ResultKey | None:
        """The key of state cell ``idx`` = (rank, baseline, mode, masking, contrast); None for
        the original's own cells (nothing to compare)."""
        r, b, mo, mk, c = idx
        if self.contrasts[c] == "original":
            return None
        return ResultKey(name, self.method, RANKS[r], self.baselines[b], self.modes[mo],
                         self.maskings[mk], self.contrasts[c])
