"""One forward pass and one batched vector-Jacobian product for all rows at once.

Only what is differentiated requires grad: the forward runs over detached parameters
(``torch.func.functional_call``), so autograd records nothing for weight gradients and, for a
hooked layer, nothing before that layer. The model object is left as found.

Precision: inputs are cast to the model's parameter dtype where they enter the model (bf16 /
fp16 "true" precision), logits are taken in float32 (float64 for a float64 model) before the VJP
rows are built, and the activation and gradients are returned in that dtype, so rows, method
rules and maps never run in half precision. Under autocast the network itself runs in half
precision, as the user asked.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from errors import ConfigError, RunError
from explainers.hooks import capture

RowsFn = Callable[[Tensor], Tensor]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_grad_possible(x: Tensor) -> None:
    """Refuse inference-mode tensors / inference mode, where no graph can be built."""
    if torch.is_inference_mode_enabled() or x.is_inference():
        raise RunError(
            "explain() needs autograd but got an inference-mode tensor (or runs inside "
            "torch.inference_mode()); in Lightning use Trainer(inference_mode=False), elsewhere "
            "torch.no_grad() is fine but inference_mode is not"
        )


def input_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's parameters (buffers if none): what inputs are cast to."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def result_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else (float32, bf16, fp16) is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def frozen_forward(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)`` with every parameter detached; the model itself is not modified.

    Autograd then records only the operations that depend on ``x`` (or on a hooked activation
    made a leaf by :func:`explainers.hooks.capture`) and saves no layer input for a weight
    gradient: at VGG-16-BN 224 px that is most of the explain forward's memory.
    Forward hooks on the model still run.
    """
    if not any(p.requires_grad for p in model.parameters()):
        return model(x)
    params = {name: p.detach() for name, p in model.named_parameters()}
    return torch.func.functional_call(model, params, (x,))


def _pow2_scale(rows: Tensor) -> Tensor:
    """Power-of-two scale ``[R, N, 1]`` bringing each (row, input)'s max |value| near 1."""
    peak = rows.abs().amax(dim=-1, keepdim=True)
    tiny = torch.finfo(rows.dtype).tiny
    return torch.exp2(torch.floor(torch.log2(peak.clamp(min=tiny))))


def _backward(logits: Tensor, act: Tensor, rows: Tensor, per_row: bool) -> Tensor:
    """Gradients ``[R, N, ...]`` of every row ``<rows[r], logits>`` w.r.t. ``act``.

    One row: a plain backward. Several: one ``is_grads_batched`` (vmap) call, whose batching
    rules run the layers' backward over R x N by first copying each saved activation R times:
    at a hooked late layer (VGG-16-BN features.40, R = 4 / 8) that is 2x faster than one
    backward per row, because the classifier's weights are read once. Through a whole
    network (``per_row``: the input-space methods) the copies dominate and one backward per row
    over the shared graph is faster (VGG-16-BN 224 px, R = 4: 2.8 s against 3.4 s; with R = 1
    vmap costs 6 % for nothing) and holds one row's gradients at a time.
    """
    if rows.shape[0] == 1:
        return torch.autograd.grad((logits,), (act,), (rows[0],))[0][None]
    if per_row:
        last = rows.shape[0] - 1
        return torch.stack([
            torch.autograd.grad((logits,), (act,), (row,), retain_graph=r < last)[0]
            for r, row in enumerate(rows)
        ])
    return torch.autograd.grad((logits,), (act,), (rows,), is_grads_batched=True)[0]


def forward_vjp(
    model: nn.Module, x: Tensor, layer: str | None, rows_fn: RowsFn
) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``model(x)`` once and back-propagate every row of ``rows_fn(logits)`` over its graph.

    Args:
        model: classifier ``[N, ...] -> [N, C]``.
        x: input ``[N, C_in, H, W]``; cast to the model's parameter dtype on the way in.
        layer: module name whose output is differentiated, or None for the input.
        rows_fn: logits ``[N, C]`` (detached, float32 / float64) -> grad_outputs ``[R, N, C]``.

    Returns:
        ``(act, grads, logits)``: the activation (or input) ``[N, ...]`` detached, the gradients
        ``[R, N, ...]`` of each row's ``<row, logits>`` w.r.t. it, and the logits ``[N, C]``
        detached; all float32 (float64 for a float64 model).
        Parameters' ``.grad`` are untouched: only ``torch.autograd.grad`` w.r.t. ``act`` is used.
        The rows go back in one batched call or one call per row, see :func:`_backward`.
    """
    check_grad_possible(x)
    dtype = input_dtype(model)
    with torch.enable_grad():
        if layer is None:
            act = x.detach().requires_grad_(True)
            out = frozen_forward(model, act.to(dtype))
        else:
            with capture(model, layer) as cap:
                out = frozen_forward(model, x.detach().to(dtype))
            act = cap.get()
        if out.dim() != 2:
            raise ConfigError(f"the model must return logits [B, C], got shape {tuple(out.shape)}")
        wide = result_dtype(out.dtype)
        logits = out.to(wide)  # rows are built from float32 logits (softmax, alpha)
        rows = rows_fn(logits.detach())
        scale = None
        if out.dtype in _LOW_PRECISION or dtype in _LOW_PRECISION or torch.is_autocast_enabled(
            x.device.type
        ):
            # The backward runs in half precision: fp16 keeps ~3 digits below 6e-5 and nothing
            # below 6e-8, and gradcam++'s weighted row p_t (e_t - p) can be ~1e-6 (its map was off
            # by 10 % under fp16 autocast, 3 % with this). The VJP is linear in the row and a
            # power of two scales exactly, so scale each row to ~1 and undo it in float32.
            scale = _pow2_scale(rows)
            rows = rows / scale
        grads = _backward(logits, act, rows, per_row=layer is None)
    grads = grads.to(wide)
    if scale is not None:
        grads = grads * scale.view(*scale.shape[:2], *([1] * (grads.dim() - 2)))
    return act.detach().to(wide), grads, logits.detach()
