"""Pure tensor ops of the threshold-free faithfulness curves (docs/curves.md).

A map's pixels (or square patches: the map averaged per patch, as region perturbation) are ranked
as the equal masking ranks them (:func:`metrics.functional.perturbation.pixel_ranks`: a stable
ascending sort, ties broken by index). At step i of ``steps`` (both ends included) exactly
``k_i = floor(i * U / (steps - 1))`` of the U units are removed:

- deletion (most relevant first, MoRF): the k_i highest-ranked units replaced by the baseline;
- deletion_lerf (least relevant first): the k_i lowest-ranked units replaced;
- insertion (most relevant first): the k'_i = U - k_{steps-1-i} highest-ranked units restored onto
  the baseline image. That image is the deletion_lerf image of step steps-1-i, so insertion costs
  no forward of its own: its curve is the deletion_lerf curve read backwards.

Scores of the perturbed image for target t: the logit y_t, the softmax p_t and the paper's relative
probability r_t = exp(y_t) / (exp(y_t1) + exp(y_t2)). AUC: the trapezoid rule over the fraction
actually perturbed (k_i / U). SRG = AUC(deletion_lerf) - AUC(deletion).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from errors import ConfigError
from explainers.engine import input_dtype
from metrics.functional.perturbation import pixel_ranks, relative_probability
from metrics.functional.road import road_impute

CURVES = ("deletion", "deletion_lerf", "insertion")
SCORES = ("logit", "prob", "relprob")
# the curves that cost forwards; insertion is deletion_lerf read backwards
RUN_CURVES = ("deletion", "deletion_lerf")


def step_counts(units: int, steps: int) -> Tensor:
    """k_i = floor(i * units / (steps - 1)) for i < steps: units removed at each step [steps]."""
    if steps < 2:
        raise ConfigError(f"curve steps={steps}: use >= 2 (both ends are included)")
    if units < 1:
        raise ConfigError(f"curve units={units}: the map has no pixels")
    return torch.arange(steps) * units // (steps - 1)


def curve_fractions(units: int, steps: int) -> dict[str, Tensor]:
    """The fraction of units actually perturbed at each step, per curve: ``{curve: [steps]}``."""
    k = step_counts(units, steps).double()
    return {"deletion": k / units, "deletion_lerf": k / units,
            "insertion": (units - k.flip(0)) / units}


def patch_ranks(maps: Tensor, patch: int) -> Tensor:
    """Ranks [..., U] of the units of maps [..., H, W]: pixels (patch 1) or the patch x patch
    squares (the map averaged per square, U = H/patch * W/patch), 0 = least relevant."""
    if patch < 1:
        raise ConfigError(f"curve patch={patch}: use a positive patch side in pixels")
    h, w = maps.shape[-2:]
    if h % patch or w % patch:
        raise ConfigError(f"curve patch={patch} does not divide the image ({h}x{w}); choose a "
                          "divisor of both sides")
    if patch > 1:
        lead = maps.shape[:-2]
        maps = F.avg_pool2d(maps.reshape(-1, 1, h, w).float(), patch).reshape(
            *lead, h // patch, w // patch)
    return pixel_ranks(maps)


def removed_units(ranks: Tensor, k: Tensor, lerf: Tensor) -> Tensor:
    """Units removed [N, U] bool for ranks [N, U], counts k [N] and lerf [N] bool (least relevant
    first; else most relevant first)."""
    units = ranks.shape[-1]
    k = k[:, None]
    return torch.where(lerf[:, None], ranks < k, ranks >= units - k)


def unit_mask_to_pixels(removed: Tensor, size: tuple[int, int], patch: int) -> Tensor:
    """Units [N, U] bool -> pixels [N, H, W] bool (each patch's unit covers its square)."""
    h, w = size
    grid = removed.reshape(-1, h // patch, w // patch)
    if patch > 1:
        grid = grid.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)
    return grid


def target_scores(logits: Tensor, t: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
    """[3, N] float32: y_t, p_t and r_t for logits [N, K] and class ids t, t1, t2 [N]."""
    y = logits.float()
    yt = y.gather(1, t[:, None])[:, 0]
    pt = torch.softmax(y, dim=1).gather(1, t[:, None])[:, 0]
    return torch.stack([yt, pt, relative_probability(y, t1, t2, t)])


def trapezoid_auc(curves: Tensor, fractions: Tensor) -> Tensor:
    """Area under curves [..., S] over fractions [S] by the trapezoid rule: [...]."""
    return torch.trapezoid(curves, fractions.to(curves), dim=-1)


def _end_scores(logits: Tensor, targets: Tensor) -> Tensor:
    """[3, N, 2] scores of targets t1 and t2 [N, 2] for logits [N, K]."""
    t1, t2 = targets[:, 0], targets[:, 1]
    return torch.stack([target_scores(logits, targets[:, r], t1, t2) for r in range(2)], dim=-1)


def run_curves(
    model: nn.Module,
    x: Tensor,
    ranks: Tensor,
    targets: Tensor,
    bases: Tensor | None,
    baselines: tuple[str, ...],
    steps: int,
    patch: int,
    max_batch: int,
    road_noise: float = 0.0,
    noise: Tensor | None = None,
    *,
    clean_logits: Tensor,
) -> Tensor:
    """Scores of every (sample, baseline, t, map, run curve, step) image: [n, n_b, 2, M, 2, S, 3].

    x [n, C, H, W] float32 (normalised), ranks [n, 2, M, U] from :func:`patch_ranks` of the
    maps of t1 and t2, targets [n, 2] (t1, t2), bases [n_b', n, C, H, W]: the images of the
    fixed baselines in ``baselines`` order, ROAD left out (its image depends on the mask: each
    row is imputed in its chunk, :func:`road_impute`, adding ``road_noise`` times the sample's
    standard normal field ``noise`` [n, C, H, W], the same for every map, curve and step).
    Run curves: deletion and deletion_lerf (insertion is read off the latter).

    Forwards: the end points are shared. Step 0 removes nothing: its scores come from
    ``clean_logits`` [n, K], the logits the explanation already computed for x. The last step
    removes every unit whatever the map: 1 fully replaced image per sample and baseline. Then
    ``2 * M * 2 * (S - 2)`` inner images per sample and baseline. They go through ``model`` without
    gradients in chunks of at most ``max_batch``, composed in one reused buffer and cast to the
    model's dtype where they enter it.
    """
    n, c, h, w = x.shape
    n_b, m = len(baselines), ranks.shape[2]
    units = ranks.shape[-1]
    dev = x.device
    ks = step_counts(units, steps).to(dev)
    inner = (n, n_b, 2, m, len(RUN_CURVES), steps - 2)
    n_end = n * n_b  # images: n * n_b fully replaced, then the inner rows
    total = n_end + math.prod(inner)
    ranks = ranks.to(torch.int32)  # half the bytes of the per-row gathers
    fixed = [i for i, b in enumerate(baselines) if b != "road"]
    slot = torch.zeros(n_b, dtype=torch.long)
    slot[fixed] = torch.arange(len(fixed))
    slot = slot.to(dev)
    road = baselines.index("road") if "road" in baselines else -1
    flat_bases = bases.flatten(0, 1) if bases is not None and fixed else None
    end_logits: list[Tensor] = []
    inner_scores: list[Tensor] = []
    dtype = input_dtype(model)
    # one input buffer (and one for the baselines' pixels) for every chunk: composing in place
    # spares the allocator and the page faults of three fresh images per row
    buf = torch.empty(min(max_batch, total), c, h, w, dtype=x.dtype, device=dev)
    bbuf = torch.empty_like(buf) if flat_bases is not None else None
    with torch.no_grad():
        for start in range(0, total, max_batch):
            row = torch.arange(start, min(start + max_batch, total), device=dev)
            size = row.numel()
            full = row < n_end
            j = (row - n_end).clamp_min(0)
            i, b, r, mi, cu, s = torch.unravel_index(j, (*inner[:-1], max(steps - 2, 1)))
            fi, fb = torch.unravel_index(row.clamp_max(n_end - 1), (n, n_b))
            i, b = torch.where(full, fi, i), torch.where(full, fb, b)
            k = torch.where(full, ks[-1], ks[s + 1])
            lerf = (cu == 1) & ~full
            removed = removed_units(ranks[i, r, mi], k, lerf)
            removed = unit_mask_to_pixels(removed, (h, w), patch)
            pert = buf[:size]
            torch.index_select(x, 0, i, out=pert)
            if flat_bases is not None and bbuf is not None:
                base = bbuf[:size]
                torch.index_select(flat_bases, 0, slot[b] * n + i, out=base)
                torch.where(removed[:, None], base, pert, out=pert)
            if road >= 0:
                # a host sync per chunk, only with ROAD: the CG runs on the ROAD rows alone
                sel = torch.nonzero(b == road).flatten()
                if sel.numel():
                    eps = noise.index_select(0, i[sel]) if noise is not None else None
                    pert[sel] = road_impute(pert[sel], removed[sel], road_noise, eps=eps)
            out = model(pert.to(dtype)).float()
            ends = int(min(max(n_end - start, 0), size))
            if ends:
                end_logits.append(out[:ends])
            if ends < size:
                ii, rr = i[ends:], r[ends:]
                inner_scores.append(target_scores(out[ends:], targets[ii, rr], targets[ii, 0],
                                                  targets[ii, 1]))
    first = _end_scores(clean_logits, targets)  # [3, n, 2]
    last = _end_scores(torch.cat(end_logits), targets.repeat_interleave(n_b, 0))
    last = last.reshape(3, n, n_b, 2)
    scores = torch.empty(3, n, n_b, 2, m, len(RUN_CURVES), steps, dtype=torch.float32,
                         device=dev)
    scores[..., 0] = first[:, :, None, :, None, None]
    scores[..., -1] = last[..., None, None]
    if steps > 2:
        scores[..., 1:-1] = torch.cat(inner_scores, dim=1).reshape(3, *inner)
    return scores.movedim(0, -1)


def all_curves(run: Tensor) -> Tensor:
    """Run scores [..., 2 (deletion, deletion_lerf), S, 3] -> [..., 3 curves, S, 3] with the
    insertion curve (deletion_lerf backwards) appended, in ``CURVES`` order."""
    return torch.cat([run, run[..., 1:2, :, :].flip(-2)], dim=-3)


def curve_aucs(curves: Tensor, units: int) -> Tensor:
    """AUC [..., 3 curves, 3 scores] of curves [..., 3 curves, S, 3 scores] (``CURVES`` order)."""
    fr = curve_fractions(units, curves.shape[-2])
    per = [trapezoid_auc(curves[..., j, :, :].transpose(-1, -2), fr[c])
           for j, c in enumerate(CURVES)]
    return torch.stack(per, dim=-2)
