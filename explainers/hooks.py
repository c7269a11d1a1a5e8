"""Capture one named module's output during a forward pass (hooks always removed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import Tensor, nn

from errors import ConfigError, InputTypeError, RunError


@dataclass
class Captured:
    """The hooked activation (a graph node the logits depend on) once the forward has run."""

    name: str
    tensor: Tensor | None = None
    calls: int = 0

    def get(self) -> Tensor:
        """The captured activation; clear error when the forward never reached the layer."""
        if self.tensor is None:
            raise RunError(
                f"layer {self.name!r} was never reached by the model's forward pass; pick a module "
                "that the forward actually calls (see model.named_modules())"
            )
        return self.tensor


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name``; ValueError listing the existing names otherwise."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        listed = ", ".join(repr(n) for n in modules if n)
        raise ConfigError(
            f"unknown layer {name!r} in {type(model).__name__}; existing names: {listed}"
        )
    return modules[name]


@contextmanager
def capture(model: nn.Module, name: str) -> Iterator[Captured]:
    """Record the output of ``model.<name>`` and hand a clone on to the rest of the network.

    The clone keeps in-place ops after the layer (``ReLU(inplace=True)``) from overwriting the
    recorded activation. When the activation does not require grad (frozen weights, plain input)
    it is turned into a leaf that does, so the engine can still differentiate w.r.t. it.
    """
    module = find_module(model, name)
    cap = Captured(name)

    def hook(_mod: nn.Module, _inp: tuple[object, ...], out: object) -> Tensor:
        if not isinstance(out, Tensor):
            raise InputTypeError(
                f"layer {name!r} returns {type(out).__name__}, not a Tensor; hook a module "
                "whose output is a single tensor"
            )
        cap.calls += 1
        if cap.calls > 1:
            raise RunError(
                f"layer {name!r} is called more than once per forward pass, so its activation is "
                "ambiguous; hook a module that runs once"
            )
        act = out if out.requires_grad else out.detach().requires_grad_(True)
        cap.tensor = act
        return act.clone()

    handle = module.register_forward_hook(hook)
    try:
        yield cap
    finally:
        handle.remove()


def tokens_to_grid(t: Tensor) -> Tensor:
    """``[..., N, D]`` transformer tokens -> ``[..., D, h, w]`` (class token 0 dropped, h = w)."""
    n = t.shape[-2] - 1
    side = round(n**0.5)
    if n <= 0 or side * side != n:
        raise ConfigError(
            f"reshape='tokens' needs 1 class token + a square grid of patch tokens, got {n + 1} "
            f"tokens (shape {tuple(t.shape)}); use reshape=None for this layer"
        )
    grid = t[..., 1:, :].transpose(-1, -2)
    return grid.reshape(*grid.shape[:-1], side, side)


Reshape = Callable[[Tensor], Tensor]
"""Turns a hooked layer's output ``[B, ...]`` into maps' layout ``[B, C, h, w]``.

Applied to the activation and, row by row, to its gradient; it must only select and move
entries (drop tokens, reshape, permute), so that the gradient of the reshaped activation is the
reshaped gradient.
"""


def channels_last_to_first(t: Tensor) -> Tensor:
    """``[B, h, w, C]`` (Swin-style NHWC stage output) -> ``[B, C, h, w]``."""
    if t.dim() != 4:
        raise ConfigError(f"channels-last reshape needs [B, h, w, C], got {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2)


@dataclass(frozen=True)
class TokensToGrid:
    """``[B, P + h*w, D]`` tokens -> ``[B, D, h, w]``: the ``P`` prefix tokens (class,
    distillation, register tokens) dropped, the rest laid out on the model's ``grid = (h, w)``
    (row-major, as patch embeddings flatten). ``grid=None``: a square grid."""

    num_prefix_tokens: int = 1
    grid: tuple[int, int] | None = None

    def __call__(self, t: Tensor) -> Tensor:
        n = t.shape[-2] - self.num_prefix_tokens
        h, w = self.grid if self.grid is not None else (round(max(n, 0) ** 0.5),) * 2
        if t.dim() != 3 or n <= 0 or h * w != n:
            raise ConfigError(
                f"token reshape expects [B, {self.num_prefix_tokens} + h*w, D] with grid "
                f"{self.grid or 'square'}, got shape {tuple(t.shape)}; is the layer a "
                "transformer block of this model, at the input size it was built for?")
        return t[:, self.num_prefix_tokens:, :].transpose(1, 2).reshape(t.shape[0], -1, h, w)


def tokens_to_grid_of(num_prefix_tokens: int, grid: tuple[int, int] | None) -> TokensToGrid:
    """A :class:`TokensToGrid` for a model with these prefix tokens and patch grid."""
    return TokensToGrid(num_prefix_tokens, grid)


def resolve_reshape(reshape: str | Reshape | None) -> Reshape | None:
    """``None``, ``"tokens"`` (ViT: one class token, square grid) or a :data:`Reshape`."""
    if reshape is None or callable(reshape):
        return reshape
    if reshape == "tokens":
        return tokens_to_grid
    raise ConfigError(f"reshape must be None, 'tokens' or a callable, got {reshape!r}")


def reshape_pair(fn: Reshape | None, act: Tensor, grads: Tensor) -> tuple[Tensor, Tensor]:
    """``fn`` on the activation ``[B, ...]`` and on each gradient row of ``grads [R, B, ...]``."""
    if fn is None:
        return act, grads
    flat = fn(grads.flatten(0, 1))
    return fn(act), flat.unflatten(0, grads.shape[:2])


__all__ = ["Captured", "Reshape", "TokensToGrid", "capture", "channels_last_to_first",
           "find_module", "reshape_pair", "resolve_reshape", "tokens_to_grid",
           "tokens_to_grid_of"]
