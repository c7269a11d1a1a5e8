"""The paper's faithfulness evaluations as torchmetrics Metrics (sum states, exact under DDP)."""

from metrics.part_localization import PartLocalization
from metrics.perturbation_score import PerturbationScore

__all__ = ["PartLocalization", "PerturbationScore"]
