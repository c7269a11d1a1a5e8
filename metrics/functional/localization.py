"""Pure tensor ops of part localisation: differ / shared regions, mass shares, the pointing game."""

from __future__ import annotations

import torch
from torch import Tensor


def pair_regions(
    part_masks: Tensor, part_attributes: Tensor, targets: Tensor
) -> tuple[Tensor, Tensor]:
    """Where t1 and t2 differ and where they agree, per sample and rank.

    Args:
        part_masks: [B, P, H, W] bool, one mask per part (may overlap, may be empty).
        part_attributes: [C, P] ids; parts p of classes t and s differ iff the ids differ.
        targets: [B, 2] the compared classes; rank 0 contrasts t1 with t2, rank 1 t2 with t1.

    Returns:
        differ, shared: [B, 2, H, W] bool, the union of the parts that differ / are the same.
        (The relation is symmetric, so both ranks get the same regions; the rank axis keeps the
        layout of the maps.)
    """
    attr = part_attributes.to(targets.device)
    differ_parts = attr[targets] != attr[targets.flip(1)]  # [B, 2, P]
    masks = part_masks.bool()
    b, p, h, w = masks.shape
    differ = torch.zeros(b, 2, h, w, dtype=torch.bool, device=masks.device)
    shared = torch.zeros_like(differ)
    # A loop over the few parts keeps memory at [B, 2, H, W] (a [B, 2, P, H, W] broadcast is
    # 150 MB at 224 px, batch 128 and CUB's 12 parts).
    for i in range(p):
        m = masks[:, None, i]  # [B, 1, H, W]
        d = differ_parts[:, :, i, None, None]  # [B, 2, 1, 1]
        differ |= m & d
        shared |= m & ~d
    return differ, shared


def mass_share(positive: Tensor, region: Tensor, total: Tensor) -> Tensor:
    """Share of positive map mass inside ``region``.

    positive: [B, 2, M, H, W] maps clamped at 0; region: [B, 2, H, W] bool; total:
    ``positive.sum((-2, -1))`` [B, 2, M] with no zeros (the caller masks empty maps).
    Returns [B, 2, M].
    """
    return (positive * region[:, :, None]).sum(dim=(-2, -1)) / total


def pointing_hits(maps: Tensor, region: Tensor) -> Tensor:
    """Whether each map's maximum lies in ``region``: maps [B, 2, M, H, W], region [B, 2, H, W].

    The maximum is the first pixel (row-major) holding the largest value, so ties are
    deterministic. Returns [B, 2, M] bool.
    """
    top = maps.flatten(-2).argmax(dim=-1)  # [B, 2, M]
    return region.flatten(-2).gather(-1, top)
