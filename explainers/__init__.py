"""Class-contrastive back-propagation explanations (pure PyTorch, no Lightning).

``explain(model, x, method, layer, topk | targets, contrasts, reshape)`` -> :class:`Explanation`;
``explain_rows(model, x, targets, which, contrasts)``: each input its own contrast row(s).
"""

from explainers.api import Explanation, explain, explain_rows
from explainers.contrasts import CONTRASTS
from explainers.methods import METHODS

__all__ = ["CONTRASTS", "METHODS", "Explanation", "explain", "explain_rows"]
