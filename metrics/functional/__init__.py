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

__all__ = [
    "blur_params",
    "equal_keep",
    "gaussian_blur",
    "make_baselines",
    "pixel_ranks",
    "relative_probability",
    "threshold_keep",
    "upsample_maps",
]
