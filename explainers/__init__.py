"""Class-contrastive back-propagation explanations (pure PyTorch, no Lightning).

``explain(model, x, method, layer, topk | targets, contrasts, reshape)`` -> :class:`Explanation`;
``explain_rows(model, x, targets, which, contrasts)``: each input its own contrast row(s).
"""

from explainers.api import Explanation, explain, explain_rows
from explainers.contrasts import ALL_CONTRASTS, CONTRASTS
from explainers.logit_contrasts import LogitContrast
from explainers.methods import METHODS

__all__ = [
    "ALL_CONTRASTS", "CONTRASTS", "METHODS", "Explanation", "LogitContrast", "explain",
    "explain_rows",
]
