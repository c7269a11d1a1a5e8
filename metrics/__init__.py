"""The paper's faithfulness evaluations as torchmetrics Metrics (sum states, exact under DDP)."""

from metrics.curves import FaithfulnessCurves
from metrics.gradient_sign import GradientSignPerturbation
from metrics.part_localization import PartLocalization
from metrics.perturbation_score import PerturbationScore
from metrics.sample_count import SampleCount

__all__ = ["FaithfulnessCurves", "GradientSignPerturbation", "PartLocalization",
           "PerturbationScore", "SampleCount"]
