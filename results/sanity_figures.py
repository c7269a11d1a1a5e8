"""The sanity checks' figures, drawn from tensors and results on the CPU (Agg, no pyplot).

- ``mprt_curves_png``: parameter randomisation: Spearman (and SSIM, dashed) of the trained and
  the randomised map against the cascade step, one line per contrast (original vs weighted).
- ``random_logit_grid_png``: a row a sample: the image, then for each contrast the map of t1 and
  the map of the random class s, drawn as the heat-map grids draw maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure
from torch import Tensor

from results.figures import (
    CELL_INCH,
    TITLE_SIZE,
    add_scale,
    class_name,
    denormalise,
    draw_overlay,
    to_png,
    upsample,
)
from results.schema import AXES, parse_results


def mprt_curves(results: Mapping[str, float], method: str
                ) -> tuple[list[str], dict[str, dict[str, list[float]]]]:
    """``(steps, {quantity: {contrast: values per step}})`` of ``method``'s MPRT keys."""
    keys = [k for k in parse_results(results)
            if k.quantity in ("mprt_spearman", "mprt_ssim") and k.method == method]
    steps = AXES["layer"].order(k.layer for k in keys)
    contrasts = AXES["contrast"].order(k.contrast for k in keys)
    out: dict[str, dict[str, list[float]]] = {}
    for q in ("mprt_spearman", "mprt_ssim"):
        vals = {(k.contrast, k.layer): results[str(k)] for k in keys if k.quantity == q}
        out[q] = {c: [vals.get((c, s), float("nan")) for s in steps] for c in contrasts}
    return steps, out


def mprt_curves_png(results: Mapping[str, float], method: str) -> bytes | None:
    """The MPRT curves of ``method`` as PNG bytes (None without MPRT results)."""
    steps, curves = mprt_curves(results, method)
    if not steps:
        return None
    fig = Figure(figsize=(max(5.0, 0.45 * len(steps) + 2), 3.6), layout="constrained")
    ax = fig.subplots()
    x = list(range(1, len(steps) + 1))
    for i, (c, ys) in enumerate(curves["mprt_spearman"].items()):
        color = f"C{i}"
        ax.plot(x, ys, "o-", color=color, label=f"{AXES['contrast'].title(c)} Spearman")
        ax.plot(x, curves["mprt_ssim"][c], "s--", color=color, alpha=0.6,
                label=f"{AXES['contrast'].title(c)} SSIM")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xticks(x)
    ax.set_xticklabels([s.split("_", 1)[-1] for s in steps], rotation=60, ha="right",
                       fontsize=TITLE_SIZE - 1)
    ax.set_xlabel("randomised down to (head first, cascading)", fontsize=TITLE_SIZE)
    ax.set_ylabel("similarity to the trained map", fontsize=TITLE_SIZE)
    ax.set_title(f"{AXES['method'].title(method)}: parameter randomisation (lower = depends on "
                 "the weights)", fontsize=TITLE_SIZE + 1)
    ax.legend(fontsize=TITLE_SIZE - 1)
    return to_png(fig)


def random_logit_grid_png(images: Tensor, maps_t: Mapping[str, Tensor],
                          maps_s: Mapping[str, Tensor], t1: Tensor, s: Tensor,
                          mean: Sequence[float], std: Sequence[float],
                          class_names: Sequence[str] | None = None, title: str = "") -> bytes:
    """Rows: samples. ``images [N, 3, H, W]`` normalised; ``maps_t`` / ``maps_s``: contrast ->
    ``[N, h, w]`` (input space ``[N, C, H, W]``) maps of ``t1 [N]`` and of the random ``s [N]``."""
    n = images.shape[0]
    shown = denormalise(images, mean, std).numpy()
    contrasts = list(maps_t)
    ncols = 1 + 2 * len(contrasts)
    fig = Figure(figsize=(CELL_INCH * ncols + 0.9, CELL_INCH * n + 0.5), layout="constrained")
    axes = fig.subplots(n, ncols, squeeze=False)
    size = images.shape[-2:]
    up_t = {c: upsample(m[:, None], size)[:, 0].numpy() for c, m in maps_t.items()}
    up_s = {c: upsample(m[:, None], size)[:, 0].numpy() for c, m in maps_s.items()}
    for i in range(n):
        draw_overlay(axes[i, 0], shown[i], None, "image")
        col = 1
        for c in contrasts:
            ct = AXES["contrast"].title(c)
            for heat, cls, who in ((up_t[c][i], t1[i], "t1"), (up_s[c][i], s[i], "s")):
                draw_overlay(axes[i, col], shown[i], heat,
                             f"{who} {ct}: {class_name(class_names, int(cls))}")
                col += 1
    add_scale(fig, axes[:, 1:])
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE + 2)
    return to_png(fig)


def stack_first(chunks: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate kept per-batch dicts of tensors along the batch."""
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]} if chunks else {}
