"""Model-parameter randomisation test (MPRT, Adebayo et al. 2018; Quantus ``MPRT``): does the
map depend on the learned weights?

On the first ``n`` test samples (global dataset index < n), the network's parameterised layers
are re-initialised one after the other, top down (the head first), cascading (earlier steps stay
randomised); after each step every method explains the samples again for their trained model's
t1, and each contrast's map is compared with the trained model's map by Spearman rank
correlation and SSIM (maps normalised as the figures show them). A map that stays similar while
the weights are destroyed does not explain the model. The trained network is never modified:
the cascade runs on a deep copy.

Re-initialisation, from a CPU generator seeded by ``(seed, step)`` (the same on every rank and
run): every parameter of the layer is drawn from ``U(-b, b)``, ``b = 1 / sqrt(fan_in)`` of the
layer's weight (PyTorch's default bound for conv / linear layers), ``b = 1`` for a layer without
a weight of 2+ dims (a norm layer's affine parameters). Buffers (BatchNorm running statistics)
are kept.

Cost per sample and layer step: one explain (one forward, one backward of ``k`` rows) per method,
i.e. ``L`` extra explains per method and sample for ``L`` parameterised layers.

States are per-(step, contrast) sums and a count (``dist_reduce_fx="sum"``): exact under DDP.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from explainers import explain
from metrics.functional.similarity import figure_normalise, spearman, ssim
from results.schema import ResultKey, check_values


def cascade_layers(net: nn.Module) -> list[str]:
    """Names of the modules holding parameters themselves, head first (reverse forward order
    of registration)."""
    return [name for name, m in net.named_modules()
            if any(True for _ in m.parameters(recurse=False))][::-1]


@torch.no_grad()
def randomise_layer(module: nn.Module, generator: torch.Generator) -> None:
    """Draw every parameter of ``module`` (not its children) from ``U(-b, b)``, in place."""
    params = list(module.parameters(recurse=False))
    weights = [p for p in params if p.dim() >= 2]
    bound = 1.0 / math.sqrt(weights[0][0].numel()) if weights else 1.0
    for p in params:
        drawn = (torch.rand(p.shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        p.copy_(drawn.to(p.dtype))


def step_name(step: int, layer: str) -> str:
    """The key part of cascade step ``step`` (1-based) that randomised ``layer``:
    ``"01_classifier.3"`` (zero-padded so that names sort in cascade order)."""
    return f"{step:02d}_{layer}"


class ParameterRandomisation(Metric):
    """Spearman and SSIM between trained and cascade-randomised maps of t1, per method, contrast
    and cascade step. :meth:`update` runs the whole cascade on one batch of samples."""

    full_state_update = False

    def __init__(self, methods: Sequence[str], layers: Sequence[str],
                 contrasts: Sequence[str] = ("original", "weighted"), seed: int = 0,
                 explain_layer: str | None = None, reshape: str | None = None,
                 explain_contrasts: Sequence[object] | None = None,
                 layer_prefix: str = "") -> None:
        super().__init__()
        self.methods = tuple(methods)
        self.layers = tuple(layers)
        self.contrasts = check_values("contrast", contrasts)
        self.explain_contrasts = tuple(explain_contrasts or self.contrasts)
        self.seed = seed
        self.explain_layer = explain_layer
        self.reshape = reshape
        self.layer_prefix = layer_prefix  # left out of the keys (a wrapper's "net.")
        shape = (len(self.methods), len(self.layers), len(self.contrasts))
        for name in ("spearman_sum", "ssim_sum"):
            self.add_state(name, torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def _maps(self, net: nn.Module, x: Tensor, t1: Tensor, method: str) -> Tensor:
        """Figure-normalised maps ``[M, B, H, W]`` of ``t1`` for every contrast."""
        from explainers.methods import METHODS

        layer = None if METHODS[method].input_space else self.explain_layer
        res = explain(net, x, method=method, layer=layer, targets=t1,
                      contrasts=self.explain_contrasts, reshape=self.reshape)
        return torch.stack([figure_normalise(res.maps[c][:, 0], x.shape[-2:])
                            for c in self.contrasts])

    def update(self, net: nn.Module, x: Tensor, t1: Tensor,
               copy_net: Callable[[nn.Module], nn.Module] = copy.deepcopy) -> None:
        """Run the cascade for samples ``x [B, 3, H, W]`` and their trained model's t1 ``[B]``.

        ``net`` is copied once (``copy_net``, a deep copy); the copy's layers (names as ``net``
        names them, see ``layers``) are randomised in turn.
        """
        if x.shape[0] == 0:
            return
        trained = {m: self._maps(net, x, t1, m) for m in self.methods}
        copy_ = copy_net(net)
        modules = dict(copy_.named_modules())
        for li, name in enumerate(self.layers):
            gen = torch.Generator().manual_seed((int(self.seed) << 16) + li)
            randomise_layer(modules[name], gen)
            for mi, method in enumerate(self.methods):
                now = self._maps(copy_, x, t1, method)
                ref = trained[method]
                for ci in range(len(self.contrasts)):
                    self.spearman_sum[mi, li, ci] += spearman(ref[ci], now[ci]).sum().to(
                        self.spearman_sum.dtype)
                    self.ssim_sum[mi, li, ci] += ssim(ref[ci], now[ci]).sum().to(
                        self.ssim_sum.dtype)
        self.count += x.shape[0]

    def compute(self) -> dict[str, Tensor]:
        """``mprt_spearman`` and ``mprt_ssim`` per (method, contrast, layer step), sample means."""
        n = self.count.clamp(min=1)
        out = {}
        for mi, method in enumerate(self.methods):
            for li, layer in enumerate(self.layers):
                for ci, c in enumerate(self.contrasts):
                    part = step_name(li + 1, layer.removeprefix(self.layer_prefix))
                    out[str(ResultKey("mprt_spearman", method, contrast=c, layer=part))] = (
                        self.spearman_sum[mi, li, ci] / n)
                    out[str(ResultKey("mprt_ssim", method, contrast=c, layer=part))] = (
                        self.ssim_sum[mi, li, ci] / n)
        return out
