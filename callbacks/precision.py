"""The trainer's precision for the evaluation's model work, and only for it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from torch import Tensor, nn


class InPrecision(nn.Module):
    """``net`` whose every forward runs inside ``context()``, the trainer's precision context.

    Lightning enters that context (autocast for ``*-mixed``, the half default dtype for
    ``*-true``) around ``test_step`` only, not around ``on_test_batch_end`` where the explain and
    perturbed forwards run. Wrapping the forward, rather than the callback's whole batch, keeps
    the VJP rows, method rules, masks, blurs and metric sums out of half precision. Layer names
    gain the prefix ``net.``; the parameters are ``net``'s own.
    """

    def __init__(self, net: nn.Module, context: Callable[[], AbstractContextManager]) -> None:
        super().__init__()
        self.net = net
        self._context = context

    def forward(self, x: Tensor) -> Tensor:
        """``net(x)`` under the precision context: logits ``[B, C]`` (half under autocast)."""
        with self._context():
            return self.net(x)
