"""Capture one named module's output during a forward pass (hooks always removed)."""

from __future__ import annotations

from collections.abc import Iterator
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


__all__ = ["Captured", "capture", "find_module", "tokens_to_grid"]
