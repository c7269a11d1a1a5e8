"""Output-space row vectors whose vector-Jacobian products give every contrast of every target.

For a map that is linear in the back-propagated gradient (GradCAM without ReLU, Linear
Approximation, XGradCAM, Gradient, Input x Gradient) each contrast is the map of one VJP row:

- ``original``: ``e_t``
- ``weighted``: ``e_t - alpha``, ``alpha = softmax(y with y_t = -inf)`` (never ``p / (1 - p_t)``,
  which is 0/0 when ``p_t == 1`` in float32)
- ``mean``: ``e_t - (1 - e_t) / (C - 1)``
- ``max``: ``e_t - e_{s*}``, ``s* = argmax_{s != t} y_s``

For gradcam++ (not linear in the gradient) ``weighted`` uses the gradient of ``p_t`` instead,
row ``p_t (e_t - p)``; ``mean`` / ``max`` are gradcam++ of the contrast output's gradient.

Any other contrast is a scalar function of the logits whose row is its gradient ``dz/dy``
(``explainers.logit_contrasts``: ``finer``, ``finer_weighted`` and user functions).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from errors import ConfigError
from explainers.logit_contrasts import FUNCTION_CONTRASTS, LogitContrast, function_rows, named

# The paper's contrasts: closed-form rows, explain()'s default.
CONTRASTS: tuple[str, ...] = ("original", "weighted", "mean", "max")
# Every named contrast: the paper's and the functions of the logits (the result schema's axis).
ALL_CONTRASTS: tuple[str, ...] = (*CONTRASTS, *FUNCTION_CONTRASTS)


def rivals(logits: Tensor, targets: Tensor) -> Tensor:
    """``s* = argmax_{s != t} y_s``: logits ``[B, C]``, targets ``[B, k]`` -> ``[B, k]`` long."""
    masked = logits[:, None, :].expand(-1, targets.shape[1], -1).clone()
    masked.scatter_(2, targets[..., None], float("-inf"))
    return masked.argmax(dim=2)


def contrast_rows(
    logits: Tensor,
    targets: Tensor,
    rival: Tensor,
    contrasts: Sequence[str | LogitContrast],
    prob_weighted: bool = False,
) -> Tensor:
    """VJP rows ``[n_contrasts, k, N, C]`` for logits ``[N, C]``, targets / rival ``[N, k]``.

    ``prob_weighted`` makes the ``weighted`` row the gradient of ``p_t``: ``p_t (e_t - p)``.
    A :class:`LogitContrast` (or the name of a built-in one, default options) gives ``dz/dy``.
    """
    logits = logits.detach()
    n, c = logits.shape
    k = targets.shape[1]
    one_hot = torch.zeros(n, k, c, dtype=logits.dtype, device=logits.device)
    one_hot.scatter_(2, targets[..., None], 1.0)
    rows = []
    for name in contrasts:
        if isinstance(name, LogitContrast) or name in FUNCTION_CONTRASTS:
            fn = name if isinstance(name, LogitContrast) else named(name)
            rows.append(function_rows(logits, targets, fn).to(logits.dtype))
        elif name == "original":
            rows.append(one_hot)
        elif name == "weighted":
            if prob_weighted:
                p = logits.softmax(dim=1)[:, None, :]
                p_t = p.expand(-1, k, -1).gather(2, targets[..., None])
                rows.append(p_t * (one_hot - p))
            else:
                masked = logits[:, None, :].expand(-1, k, -1).clone()
                masked.scatter_(2, targets[..., None], float("-inf"))
                rows.append(one_hot - masked.softmax(dim=2))
        elif name == "mean":
            rows.append(one_hot - (1.0 - one_hot) / (c - 1))
        elif name == "max":
            rival_hot = torch.zeros_like(one_hot).scatter_(2, rival[..., None], 1.0)
            rows.append(one_hot - rival_hot)
        else:
            raise ConfigError(f"unknown contrast {name!r}; choose from {ALL_CONTRASTS}")
    return torch.stack(rows).transpose(1, 2)
