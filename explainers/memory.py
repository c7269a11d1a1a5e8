"""What autograd keeps for the backward pass: saved-tensor bytes, to size chunks by memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

from explainers.engine import frozen_forward, input_dtype
from explainers.hooks import capture

T = TypeVar("T")


def saved_tensor_bytes(fn: Callable[[], T]) -> tuple[T, list[int]]:
    """Run ``fn()`` and list the bytes of every tensor autograd saves for backward meanwhile.

    Returns ``(fn's result, sizes)``: one entry per storage, in the order first saved (a saved
    view and its base share one storage and count once). Storage bytes hold on any device, CPU
    included; the gradients a backward pass has in flight are not in them. A parameter saved by
    a layer shares the parameter's storage, so it is listed but is not extra memory.
    """
    seen: dict[tuple[str, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        try:
            storage = t.untyped_storage()
            key, size = (str(t.device), storage.data_ptr()), storage.nbytes()
        except (RuntimeError, NotImplementedError):  # tensor subclasses without a storage
            key, size = (str(t.device), id(t)), t.numel() * t.element_size()
        seen.setdefault(key, size)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, list(seen.values())


def graph_bytes_per_input(
    model: nn.Module, example: Tensor, layer: str | None = None
) -> tuple[int, int]:
    """Saved-tensor bytes one more input adds to the explain forward, and its largest tensor.

    Runs the engine's forward (detached parameters, gradient w.r.t. the input or the hooked
    ``layer``) on 1 and on 2 copies of ``example [1, C_in, H, W]`` and takes the difference, so
    what does not grow with the batch (weights saved by the layers) drops out. Call it under the
    same autocast / dtype as the real work: half precision saves half the bytes.

    Returns ``(per_input, largest)``: total bytes per input, and its largest single saved tensor
    (about the widest activation: what a backward pass holds in flight per VJP row is a few
    of those).
    """
    def sizes(n: int) -> list[int]:
        x = example.detach().expand(n, *example.shape[1:]).to(input_dtype(model))

        def forward() -> Tensor:
            with torch.enable_grad():
                if layer is None:
                    return frozen_forward(model, x.clone().requires_grad_(True))
                with capture(model, layer):
                    return frozen_forward(model, x)

        return saved_tensor_bytes(forward)[1]

    one, two = sizes(1), sizes(2)
    if len(one) == len(two):  # the same graph: pair the tensors to find the per-input ones
        growth = [b - a for a, b in zip(one, two, strict=True)]
    else:
        growth = [sum(two) - sum(one)]
    return max(sum(two) - sum(one), 0), max(max(growth, default=0), 0)
