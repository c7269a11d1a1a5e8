"""FullGrad (Srinivas & Fleuret, NeurIPS 2019): the input-gradient term plus the bias-gradient
terms of every layer with a bias, with the published post-processing.

``S = psi(grad_x z * x) + sum_l psi(grad_{a_l} z * b_l)``, ``a_l`` the output of a layer with a
bias ``b_l`` (per channel): a convolution's bias, or a BatchNorm layer's effective bias
``beta - mu * gamma / sqrt(var + eps)`` (eval mode). ``psi``: absolute value, min-max
normalisation of each map over all its channels and pixels (``eps = 1e-6``), bilinear resize to
the input (``align_corners=True``), sum over channels. As in the authors' code only spatial
(4-D) terms enter: a linear layer's bias has no position and is left out.

All targets and contrasts come from ONE forward (parameters detached) and one backward per VJP
row over the shared graph, taking the gradients w.r.t. the input and every bias layer's output at
once. ``z`` is each row's output (``explainers.contrasts``): FullGrad's post-processing is not
linear, so every contrast is FullGrad of its contrast output's gradient (gradcam++'s rule; its
``weighted`` row ``p_t (e_t - p)`` is ``p_t (1 - p_t)`` times the paper's ``e_t - alpha`` and
the normalisation removes that positive factor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from errors import ConfigError
from explainers.engine import RowsFn, check_grad_possible, frozen_forward, input_dtype, result_dtype


def bias_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the convolutions with a bias and the BatchNorm layers."""
    return [(n, m) for n, m in model.named_modules()
            if (isinstance(m, nn.modules.conv._ConvNd) and m.bias is not None)
            or isinstance(m, nn.modules.batchnorm._BatchNorm)]


def effective_bias(module: nn.Module) -> Tensor:
    """The per-channel bias ``[K]`` a layer adds to its output (detached)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.running_mean is None or module.running_var is None:
            raise ConfigError("FullGrad needs BatchNorm running statistics "
                              "(track_running_stats=True)")
        gamma = module.weight if module.weight is not None else 1.0
        beta = module.bias if module.bias is not None else 0.0
        scale = gamma / torch.sqrt(module.running_var + module.eps)
        return (beta - module.running_mean * scale).detach()
    return module.bias.detach()


def postprocess(term: Tensor, size: tuple[int, int], eps: float = 1e-6) -> Tensor:
    """``[..., K, h, w]`` -> ``[..., H, W]``: abs, min-max per map, bilinear resize, channel sum."""
    lead = term.shape[:-3]
    t = term.abs().flatten(0, -4) if lead else term.abs()[None]
    flat = t.flatten(1)
    t = t - flat.min(dim=1).values.view(-1, 1, 1, 1)
    t = t / (t.flatten(1).max(dim=1).values.view(-1, 1, 1, 1) + eps)
    if tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=True)
    return t.sum(dim=1).reshape(*lead, *size)


def fullgrad_vjp(model: nn.Module, x: Tensor, rows_fn: RowsFn) -> tuple[Tensor, Tensor]:
    """FullGrad maps ``[R, N, H, W]`` of every row of ``rows_fn(logits)``, and the logits.

    One forward; one backward per row w.r.t. the input and every bias layer's output.
    """
    check_grad_possible(x)
    dtype = input_dtype(model)
    layers = bias_layers(model)
    outs: list[Tensor] = []

    def keep(_m: nn.Module, _i: object, out: Tensor) -> Tensor:
        outs.append(out)
        return out.clone()  # in-place ops after the layer act on the clone, not on `out`

    handles = [m.register_forward_hook(keep) for _, m in layers]
    try:
        with torch.enable_grad():
            inp = x.detach().to(dtype).requires_grad_(True)
            logits = frozen_forward(model, inp)
            wide = result_dtype(logits.dtype)
            rows = rows_fn(logits.detach().to(wide))
            if len(outs) != len(layers):
                raise ConfigError(f"FullGrad: {len(layers)} bias layers but {len(outs)} outputs "
                                  "recorded (a layer called twice or never)")
            size = (x.shape[-2], x.shape[-1])
            biases = [effective_bias(m).to(wide) for _, m in layers]
            maps = []
            last = rows.shape[0] - 1
            # one backward per row, as the engine does through a whole network: measured on the
            # CPU, a batched VJP (is_grads_batched) took 3.4 s vs 1.4 s (tiny_vgg, 16 x 64 px)
            # and 38 s vs 35 s (vgg16_bn, 2 x 224 px) for top-2 x 4 contrasts
            for r, row in enumerate(rows):
                grads = torch.autograd.grad((logits,), (inp, *outs), (row.to(logits.dtype),),
                                            retain_graph=r < last, allow_unused=True)
                g_in = grads[0].to(wide)
                m = postprocess(g_in * inp.detach().to(wide), size)
                for g, b in zip(grads[1:], biases, strict=True):
                    if g is not None and g.dim() == 4:
                        m = m + postprocess(g.to(wide) * b.view(1, -1, 1, 1), size)
                maps.append(m)
    finally:
        for h in handles:
            h.remove()
    return torch.stack(maps), logits.detach().to(wide)
