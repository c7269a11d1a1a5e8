"""Heat-map grids: image | original, weighted for t1 | original, weighted for t2; a row a sample."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from matplotlib.colors import CenteredNorm

# A bare Figure renders with Agg and leaves pyplot's global backend state alone (headless, threads).
from matplotlib.figure import Figure


def denormalise(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """[N, 3, H, W] normalised -> [N, H, W, 3] in [0, 1] (CPU float)."""
    images = images.detach().cpu().float()  # bf16 batches (*-true precision): numpy needs fp32
    m = torch.tensor(mean, dtype=images.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * s + m).clamp(0, 1).permute(0, 2, 3, 1)


def heatmap_grid_png(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    targets: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    class_names: Sequence[str] | None = None,
    title: str = "",
) -> bytes:
    """Render a grid as PNG bytes.

    Args:
        images: [N, 3, H, W] normalised images.
        maps: contrast -> [N, k, h, w] signed maps (upsampled bilinearly to H x W here).
        targets: [N, k] class ids explained.
        mean, std: the normalisation to undo for display.
        class_names: optional names for the column titles.
        title: figure title (e.g. the method).

    Each map is shown with a diverging colour map centred at 0 (its own symmetric range) over the
    de-normalised image; red = evidence for the class, blue = against.
    """
    n = images.shape[0]
    shown = denormalise(images, mean, std)
    contrasts = list(maps)
    k = next(iter(maps.values())).shape[1] if maps else 0
    ncols = 1 + k * len(contrasts)
    fig = Figure(figsize=(1.8 * ncols, 1.8 * n))
    axes = fig.subplots(n, ncols, squeeze=False)
    size = images.shape[-2:]
    up = {
        c: F.interpolate(m.detach().float().cpu(), size=size, mode="bilinear", align_corners=False)
        for c, m in maps.items()
    }
    for i in range(n):  # plotting only, not a hot path
        axes[i, 0].imshow(shown[i].numpy())
        axes[i, 0].set_title("image", fontsize=7)
        col = 1
        for j in range(k):
            cls = int(targets[i, j])
            name = class_names[cls] if class_names and cls < len(class_names) else str(cls)
            for c in contrasts:
                ax = axes[i, col]
                ax.imshow(shown[i].numpy().mean(-1), cmap="gray", alpha=1.0)
                heat = up[c][i, j].numpy()
                ax.imshow(heat, cmap="bwr", norm=CenteredNorm(vcenter=0.0), alpha=0.6)
                ax.set_title(f"t{j + 1} {c[:3]}: {name}"[:28], fontsize=7)
                col += 1
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
