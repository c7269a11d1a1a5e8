"""The protocol's work on one test batch, and its metrics: what ``ContrastiveEvaluation`` runs per
batch and what ``benchmarks/`` time, so the benchmarks measure the product's own code.

Per batch: one ``explain`` call per method (every target and contrast at once), the metrics'
``update`` on the device (perturbed images batched and chunked by ``max_batch`` inside the
metrics), part localisation where the batch carries part masks, then the gradient-sign
experiment. :meth:`EvaluationStep.compute` reduces every metric (torchmetrics' "sum" states:
exact under DDP) into the flat ``{result key: value}`` dict of ``results.schema``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from callbacks.precision import InPrecision
from errors import ConfigError
from explainers import Explanation, explain
from explainers.hooks import Reshape
from explainers.logit_contrasts import with_options
from metrics import (
    FaithfulnessCurves,
    GradientSignPerturbation,
    PartLocalization,
    PerturbationScore,
    SampleCount,
)
from metrics.functional import metric_state_dtype
from metrics.parameter_randomisation import ParameterRandomisation
from metrics.random_logit import RandomLogit, draw_other
from results.schema import ResultKey

# The parts of a batch's work, as ``timer`` sees them.
PARTS = ("explain", "masking", "localisation", "gradient_sign", "curves")
Timer = Callable[[str], AbstractContextManager]


def _untimed(_part: str) -> AbstractContextManager:
    return contextlib.nullcontext()


class EvaluationStep(nn.Module):
    """The protocol's metrics for ``methods`` and the per-batch work that feeds them.

    Every argument is required: ``ContrastiveEvaluation`` (whose signature holds the defaults)
    builds one with :meth:`ContrastiveEvaluation.evaluation_step`. ``memory_budget``: bytes of one
    gradient-sign chunk's autograd graph (None: no limit). ``mean`` / ``std``: the data's
    normalisation (gradient-sign steps clamp in pixel space). ``contrast_options``: options of the
    function contrasts (``explainers.logit_contrasts.OPTIONS``: gamma, top, alpha).
    """

    def __init__(
        self,
        *,
        methods: Sequence[str],
        layer: str | None,
        topk: int,
        contrasts: Sequence[str],
        baselines: Sequence[str],
        modes: Sequence[str],
        maskings: Sequence[str],
        threshold: float | None,
        max_batch: int,
        gradient_sign: bool,
        steps: Sequence[int],
        eps: float,
        memory_budget: int | None,
        localization: bool,
        mean: Sequence[float],
        std: Sequence[float],
        reshape: str | Reshape | None = None,
        contrast_options: Mapping[str, float] | None = None,
        random_logit: bool = False,
        random_logit_seed: int = 0,
        mprt_samples: int = 0,
        mprt_layers: Sequence[str] = (),
        mprt_seed: int = 0,
        curves: dict[str, object] | None = None,
    ) -> None:
        super().__init__()
        self.methods = tuple(methods)
        self.layer = layer
        self.topk = topk
        self.contrasts = tuple(contrasts)
        # what explain() takes: the function contrasts (finer, ...) built with their options
        self.explain_contrasts = with_options(self.contrasts, contrast_options)
        self.reshape = reshape
        self.localization = localization
        self.seen = SampleCount()
        self.perturbation = nn.ModuleDict({
            m: PerturbationScore(m, contrasts=contrasts, baselines=baselines, modes=modes,
                                 maskings=maskings, threshold=threshold, max_batch=max_batch)
            for m in self.methods})
        self.parts = nn.ModuleDict({
            m: PartLocalization(m, contrasts=contrasts, threshold=threshold)
            for m in self.methods} if localization else {})
        self.gradient_sign = GradientSignPerturbation(
            mean, std, steps=steps, eps=eps, max_batch=max_batch, memory_budget=memory_budget,
        ) if gradient_sign else None
        # faithfulness curves (off unless ``curves`` gives FaithfulnessCurves' options)
        self.curves = nn.ModuleDict({
            m: FaithfulnessCurves(m, contrasts=contrasts, threshold=threshold,
                                  max_batch=max_batch, **(curves or {}))
            for m in self.methods} if curves is not None else {})
        self._parts_used = False
        self.parts_computed = False  # whether the last compute() reported localisation
        self.random_logit = nn.ModuleDict({
            m: RandomLogit(m, contrasts=contrasts, seed=random_logit_seed)
            for m in self.methods} if random_logit else {})
        self.random_logit_seed = random_logit_seed
        self._host_seen = 0  # samples this step has taken (host-side, from shapes only)
        # method -> (maps of s: contrast -> [B, ...], s [B]) of the last batch (the figures)
        self.last_random: dict[str, tuple[dict[str, Tensor], Tensor]] = {}
        # parameter randomisation: samples with a global index < mprt_samples, run at finish()
        self.mprt_samples = mprt_samples
        self.mprt = ParameterRandomisation(
            self.methods, mprt_layers, contrasts, seed=mprt_seed, explain_layer=layer,
            reshape=reshape, explain_contrasts=self.explain_contrasts,
            layer_prefix="net.") if mprt_samples > 0 and mprt_layers else None
        self._mprt_kept: list[tuple[Tensor, Tensor]] = []

    def set_state_dtype(self, device: torch.device) -> EvaluationStep:
        """float64 sums, float32 on a device without float64 (MPS); returns ``self``."""
        dtype = metric_state_dtype(device)
        if dtype != torch.float64:
            for metric in self.modules():
                if isinstance(metric, Metric):
                    metric.set_dtype(dtype)
        return self

    def update(
        self,
        net: nn.Module,
        x: Tensor,
        labels: Tensor,
        part_masks: Tensor | None = None,
        part_attributes: Tensor | None = None,
        timer: Timer = _untimed,
        indices: Sequence[int] | None = None,
    ) -> dict[str, Explanation]:
        """Explain and measure one batch; returns each method's :class:`Explanation`.

        ``x [B, 3, H, W]`` normalised, ``labels [B]``; ``part_masks [B, P, H, W]`` bool and
        ``part_attributes [C, P]`` long where the data has parts. ``net`` is used as given (eval
        mode, its forwards in the caller's precision). ``timer(part)`` is a context manager
        around each part of the work (``PARTS``); the benchmarks time with it. ``indices``: the
        samples' global dataset indices (the random-logit check's and the ROAD noise's seeds;
        None: counted from 0 on this step, right for one process).
        """
        self.seen.update(labels)
        with_parts = self.localization and part_masks is not None
        if with_parts and part_attributes is None:
            raise ConfigError("EvaluationStep.update: part_masks given without part_attributes "
                              "[C, P] (each class's attribute of each part)")
        out: dict[str, Explanation] = {}
        if indices is None:
            indices = range(self._host_seen, self._host_seen + x.shape[0])
        self._host_seen += x.shape[0]
        also = None
        if self.random_logit:
            def also(logits: Tensor, t: Tensor) -> Tensor:
                return draw_other(indices, t[:, 0], logits.shape[1],
                                  self.random_logit_seed)[:, None]
        for method in self.methods:
            with timer("explain"):
                res = explain(net, x, method=method, layer=self.layer, topk=self.topk,
                              contrasts=self.explain_contrasts, reshape=self.reshape, also=also)
            if also is not None:  # the random class s rides in the same backward, last
                s_class = res.targets[:, self.topk]
                res, other = split_extra(res, self.topk)
                self.last_random[method] = (other, s_class)
                self.random_logit[method].update({c: m[:, 0] for c, m in res.maps.items()},
                                                 other, x.shape[-2:])
            out[method] = res
            with timer("masking"):
                self.perturbation[method].update(net, x, res.maps, res.targets, res.logits)
            if self.curves:
                with timer("curves"):
                    self.curves[method].update(net, x, res.maps, res.targets, res.logits,
                                               indices)
            if with_parts:
                with timer("localisation"):
                    self.parts[method].update(res.maps, res.targets, res.logits, part_masks,
                                              part_attributes)
                self._parts_used = True
        if self.mprt is not None:
            keep = [i for i, g in enumerate(indices) if g < self.mprt_samples]
            if keep:
                sel = torch.tensor(keep, device=x.device)
                t1 = next(iter(out.values())).targets[:, 0]
                self._mprt_kept.append((x.index_select(0, sel).detach(), t1.index_select(0, sel)))
        if self.gradient_sign is not None:
            with timer("gradient_sign"), torch.enable_grad():
                self.gradient_sign.update(net, x, labels)
        return out

    def finish(self, net: nn.Module) -> None:
        """Run the parameter-randomisation cascade on the kept samples (every rank: its own;
        call before :meth:`compute`). ``net``: the network as ``update`` got it; not modified."""
        if self.mprt is None or not self._mprt_kept:
            return
        x = torch.cat([k[0] for k in self._mprt_kept])
        t1 = torch.cat([k[1] for k in self._mprt_kept])
        self._mprt_kept = []
        with torch.enable_grad():
            self.mprt.update(net, x, t1[:, None], copy_net=_copy_net)

    def _parts_used_anywhere(self, device: torch.device) -> bool:
        if not self.parts:
            return False
        # compute() is a collective under DDP: every rank must agree on whether to call it
        flag = torch.tensor(float(self._parts_used))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = flag.to(device)
            torch.distributed.all_reduce(flag)
        return bool(flag > 0)

    def compute(self) -> dict[str, float]:
        """Every metric's values (reduced across DDP ranks: call it on every rank, in the same
        order) as ``{result key: value}``, keys sorted."""
        device = self.seen.count.device
        values: dict[str, Tensor] = {str(ResultKey("num_samples")): self.seen.compute()}
        for method in self.methods:
            values.update(self.perturbation[method].compute())
        self.parts_computed = self._parts_used_anywhere(device)
        if self.parts_computed:
            for method in self.methods:
                values.update(self.parts[method].compute())
        if self.gradient_sign is not None:
            values.update(self.gradient_sign.compute())
        for method in self.random_logit:
            values.update(self.random_logit[method].compute())
        if self.mprt is not None:
            values.update(self.mprt.compute())
        for method in self.curves:
            values.update(self.curves[method].compute())
        return {k: float(v.detach().cpu()) for k, v in sorted(values.items())}

    def reset(self) -> None:
        """Empty every metric for the next run."""
        for metric in self.modules():
            if isinstance(metric, Metric):
                metric.reset()
        self._parts_used = False


def split_extra(res: Explanation, k: int) -> tuple[Explanation, dict[str, Tensor]]:
    """The explanation of the first ``k`` targets, and the maps of the one extra target
    (contrast -> ``[B, ...]``) that ``explain(..., also=...)`` appended."""
    main = Explanation(targets=res.targets[:, :k], logits=res.logits,
                       maps={c: m[:, :k] for c, m in res.maps.items()}, method=res.method,
                       layer=res.layer)
    return main, {c: m[:, k] for c, m in res.maps.items()}


def _copy_net(net: nn.Module) -> nn.Module:
    """A deep copy of the network; a precision wrapper is re-made around the copy (its context
    belongs to the trainer and is not copied)."""
    if isinstance(net, InPrecision):
        return InPrecision(copy.deepcopy(net.net), net._context)
    return copy.deepcopy(net)
