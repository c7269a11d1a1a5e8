"""Class-contrastive back-propagation explanations (pure PyTorch, no Lightning).

``explain(model, x, method, layer, topk | targets, contrasts, reshape)`` -> :class:`Explanation`.
"""

from explainers.api import Explanation, explain
from explainers.contrasts import CONTRASTS
from explainers.methods import METHODS

__all__ = ["CONTRASTS", "METHODS", "Explanation", "explain"]
