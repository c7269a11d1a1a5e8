"""Functional cores of the metrics (pure tensor ops, no state)."""

from metrics.functional.perturbation import (
    blur_params,
    equal_keep,
    gaussian_blur,
    make_baselines,
    pixel_ranks,
    relative_probability,
    threshold_keep,
    upsample_maps,
)
from metrics.functional.states import metric_state_dtype

__all__ = [
    "blur_params",
    "equal_keep",
    "gaussian_blur",
    "make_baselines",
    "metric_state_dtype",
    "pixel_ranks",
    "relative_probability",
    "threshold_keep",
    "upsample_maps",
]
