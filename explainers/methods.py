"""Explanation methods: the few lines turning (activation, gradient) into a map.

Activation-space methods take ``act [B, K, h, w]`` and ``grad [R, B, K, h, w]`` and return
``[R, B, h, w]``; input-space methods take ``x [B, C_in, H, W]`` and ``grad [R, B, C_in, H, W]``
and return ``[R, B, C_in, H, W]``. No ReLU on any map (it would break the contrasts' linearity).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Method:
    """A method's map rule and its flags.

    ``input_space``: explains the input (``layer=None``), else a hooked activation.
    ``linear``: the map is linear in the gradient, so every contrast is exact.
    """

    name: str
    input_space: bool
    linear: bool

    def __call__(self, act: Tensor, grad: Tensor) -> Tensor:
        """Map for each gradient row; see the module docstring for shapes."""
        return _RULES[self.name](act, grad)


def _gradcam(act: Tensor, grad: Tensor) -> Tensor:
    weights = grad.mean(dim=(-2, -1), keepdim=True)
    return (weights * act).sum(dim=-3)


def _linear_approx(act: Tensor, grad: Tensor) -> Tensor:
    return (act * grad).sum(dim=-3)


def _xgradcam(act: Tensor, grad: Tensor) -> Tensor:
    # L1 norm instead of the original sum of A: without ReLU activations can be negative.
    norm = act.abs().sum(dim=(-2, -1), keepdim=True) + 1e-7
    weights = (grad * act).sum(dim=(-2, -1), keepdim=True) / norm
    return (weights * act).sum(dim=-3)


def _gradcam_pp(act: Tensor, grad: Tensor) -> Tensor:
    # pytorch-grad-cam's closed form (exponential output assumption), no ReLU on the map.
    g2 = grad.pow(2)
    g3 = g2 * grad
    act_sum = act.sum(dim=(-2, -1), keepdim=True)
    aij = g2 / (2 * g2 + act_sum * g3 + 1e-7)
    aij = aij.where(grad != 0, 0.0)
    weights = (grad.clamp(min=0) * aij).sum(dim=(-2, -1), keepdim=True)
    return (weights * act).sum(dim=-3)


def _gradient(_x: Tensor, grad: Tensor) -> Tensor:
    return grad


def _input_x_gradient(x: Tensor, grad: Tensor) -> Tensor:
    return x * grad


_RULES = {
    "gradcam": _gradcam,
    "linear_approx": _linear_approx,
    "xgradcam": _xgradcam,
    "gradcam++": _gradcam_pp,
    "gradient": _gradient,
    "input_x_gradient": _input_x_gradient,
    # integrated_gradients: (x - baseline) * path-averaged gradient (the engine averages).
    "integrated_gradients": _input_x_gradient,
}

METHODS: dict[str, Method] = {
    "gradcam": Method("gradcam", input_space=False, linear=True),
    "linear_approx": Method("linear_approx", input_space=False, linear=True),
    "xgradcam": Method("xgradcam", input_space=False, linear=True),
    "gradcam++": Method("gradcam++", input_space=False, linear=False),
    "gradient": Method("gradient", input_space=True, linear=True),
    "input_x_gradient": Method("input_x_gradient", input_space=True, linear=True),
    "integrated_gradients": Method("integrated_gradients", input_space=True, linear=True),
    # maps [R, B, H, W] from explainers.fullgrad (its own backward: input and bias layers)
    "fullgrad": Method("fullgrad", input_space=True, linear=False),
}
