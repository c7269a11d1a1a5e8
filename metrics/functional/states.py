"""The dtype of metric states: float64 sums wherever the device has float64."""

from __future__ import annotations

import torch


def metric_state_dtype(device: torch.device | str) -> torch.dtype:
    """float64 for sums over a whole test set; float32 on MPS, which has no float64."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64
