"""One forward pass and one batched vector-Jacobian product for all rows at once."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from explainers.hooks import capture

RowsFn = Callable[[Tensor], Tensor]


def check_grad_possible(x: Tensor) -> None:
    """Refuse inference-mode tensors / inference mode, where no graph can be built."""
    if torch.is_inference_mode_enabled() or x.is_inference():
        raise RuntimeError(
            "explain() needs autograd but got an inference-mode tensor (or runs inside "
            "torch.inference_mode()); in Lightning use Trainer(inference_mode=False), elsewhere "
            "torch.no_grad() is fine but inference_mode is not"
        )


def forward_vjp(
    model: nn.Module, x: Tensor, layer: str | None, rows_fn: RowsFn
) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``model(x)`` once and back-propagate every row of ``rows_fn(logits)`` in one call.

    Args:
        model: classifier ``[N, ...] -> [N, C]``.
        x: input ``[N, C_in, H, W]``.
        layer: module name whose output is differentiated, or None for the input.
        rows_fn: logits ``[N, C]`` (detached) -> grad_outputs ``[R, N, C]``.

    Returns:
        ``(act, grads, logits)``: the activation (or input) ``[N, ...]`` detached, the gradients
        ``[R, N, ...]`` of each row's ``<row, logits>`` w.r.t. it, and the logits ``[N, C]``
        detached.
        Parameters' ``.grad`` are untouched: only ``torch.autograd.grad`` w.r.t. ``act`` is used.
    """
    check_grad_possible(x)
    with torch.enable_grad():
        if layer is None:
            act = x.detach().requires_grad_(True)
            logits = model(act)
        else:
            with capture(model, layer) as cap:
                logits = model(x)
            act = cap.get()
        if logits.dim() != 2:
            raise ValueError(
                f"the model must return logits [B, C], got shape {tuple(logits.shape)}"
            )
        rows = rows_fn(logits.detach())
        (grads,) = torch.autograd.grad((logits,), (act,), (rows,), is_grads_batched=True)
    return act.detach(), grads, logits.detach()
