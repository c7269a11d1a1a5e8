"""``explain``: every target and every contrast of one method from one forward + one backward."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from errors import ConfigError, InputTypeError
from explainers.contrasts import ALL_CONTRASTS, CONTRASTS, contrast_rows, rivals
from explainers.engine import check_grad_possible, forward_vjp, result_dtype
from explainers.fullgrad import fullgrad_vjp
from explainers.hooks import Reshape, reshape_pair, resolve_reshape
from explainers.logit_contrasts import LogitContrast, LogitFn, as_contrast
from explainers.methods import METHODS, Method


@dataclass
class Explanation:
    """Result of :func:`explain`.

    ``targets [B, k]``; ``logits [B, C]`` detached; ``maps``: contrast -> ``[B, k, h, w]``
    (activation methods) or ``[B, k, C_in, H, W]`` (input-space methods); signed, not normalised,
    not upsampled, on the input's device.
    """

    targets: Tensor
    logits: Tensor
    maps: dict[str, Tensor] = field(default_factory=dict)
    method: str = ""
    layer: str | None = None

    @property
    def probs(self) -> Tensor:
        """``softmax(logits)`` ``[B, C]``."""
        return self.logits.softmax(dim=1)


def _check_targets(targets: Tensor, num_classes: int, batch: int) -> Tensor:
    if targets.dtype not in (torch.int64, torch.int32):
        raise InputTypeError(
            f"targets must be a LongTensor [B] or [B, k], got dtype {targets.dtype}")
    t = targets.long()
    t = t[:, None] if t.dim() == 1 else t
    if t.dim() != 2 or t.shape[0] != batch:
        raise ConfigError(
            f"targets must be [B] or [B, k] with B = {batch}, got {tuple(targets.shape)}"
        )
    if bool(((t < 0) | (t >= num_classes)).any()):  # one host sync per public call
        raise ConfigError(f"targets must lie in [0, {num_classes}), got {targets.tolist()}")
    return t


def _check_call(method: str, layer: str | None, reshape: str | Reshape | None,
                x: Tensor) -> Method:
    """Validate the arguments every entry shares; returns the method's spec."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    spec = METHODS[method]
    if spec.input_space and layer is not None:
        raise ConfigError(f"method {method!r} explains the input: pass layer=None, not {layer!r}")
    if not spec.input_space and layer is None:
        raise ConfigError(f"method {method!r} needs layer=<module name from model.named_modules()>")
    resolve_reshape(reshape)
    if x.dim() != 4:
        raise ConfigError(f"x must be images [B, C_in, H, W], got shape {tuple(x.shape)}")
    check_grad_possible(x)
    return spec


ContrastArg = str | LogitContrast | LogitFn


def _check_contrasts(contrasts: Sequence[ContrastArg]) -> tuple[str | LogitContrast, ...]:
    """Names checked against ``ALL_CONTRASTS``; functions wrapped; names must not repeat."""
    if isinstance(contrasts, str) or callable(contrasts):
        contrasts = (contrasts,)
    items = tuple(as_contrast(c) for c in contrasts)
    bad = [c for c in items if isinstance(c, str) and c not in ALL_CONTRASTS]
    if bad or not items:
        raise ConfigError(f"unknown contrasts {bad or contrasts!r}; choose from "
                          f"{ALL_CONTRASTS} or give a function z(logits [C], target) -> scalar")
    names = contrast_names(items)
    if len(set(names)) != len(names):
        raise ConfigError(f"contrast names repeat: {names}; give functions distinct names "
                          "(explainers.LogitContrast(name, fn))")
    return items


def contrast_names(contrasts: Sequence[str | LogitContrast]) -> tuple[str, ...]:
    """The maps' keys: a name, or a :class:`LogitContrast`'s name."""
    return tuple(c if isinstance(c, str) else c.name for c in contrasts)


def explain(
    model: nn.Module,
    x: Tensor,
    method: str = "gradcam",
    layer: str | None = None,
    topk: int = 1,
    targets: Tensor | None = None,
    contrasts: Sequence[ContrastArg] = CONTRASTS,
    reshape: str | Reshape | None = None,
    steps: int = 16,
    baseline: Tensor | float = 0.0,
    also: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Explanation:
    """Explain ``model`` at ``x [B, C_in, H, W]`` for ``targets`` (or the top-``topk`` predictions).

    All selected contrasts of all targets come from ONE forward pass (integrated gradients: the
    path is stacked into the batch) and one VJP row per (contrast, target): at a hooked layer all
    rows in ONE ``torch.autograd.grad(..., is_grads_batched=True)``; in input space one backward
    per row over that one graph, which measured faster than vmap through a whole network (see
    ``explainers.engine._backward``).

    Exactness: for gradcam / linear_approx / xgradcam (no ReLU) and gradient / input_x_gradient
    all four contrasts equal the explicit per-class formulas ``phi_t - sum_s w_s phi_s`` exactly
    (the map is linear in the gradient). gradcam++ is not linear: its ``weighted`` map is
    gradcam++ of the gradient of ``p_t`` (paper's "explain p_t" form) and ``mean`` / ``max`` are
    gradcam++ of the gradient of ``y_t - mean_s y_s`` / ``y_t - y_{s*}``. integrated_gradients'
    ``weighted`` uses alpha at each path point, so it is not an exact contrast of per-class IG
    maps (alpha varies along the path); its ``max`` rival ``s*`` is taken at ``x``.

    Args:
        model: classifier returning logits ``[B, C]``; its mode and weights are left unchanged.
        x: normalised images ``[B, C_in, H, W]`` (not an inference-mode tensor).
        method: a key of ``METHODS``.
        layer: module name (``model.named_modules()``) for activation methods; None for input ones.
        topk: number of top predictions explained when ``targets`` is None.
        targets: LongTensor ``[B]`` or ``[B, k]``.
        contrasts: names from ``ALL_CONTRASTS`` (default: the paper's four, ``CONTRASTS``),
            :class:`LogitContrast` objects (e.g.
            ``logit_contrasts.named("finer", gamma=0.5)``) or functions ``z(y [C], t []) ->
            scalar`` of one input's logits (gradient ``dz/dy`` by ``torch.func``; the map is keyed
            by the function's ``__name__``). gradcam++ explains the gradient of ``z`` itself.
        reshape: ``"tokens"`` turns ViT block outputs ``[B, 1 + h*w, D]`` into ``[B, D, h, w]``;
            a callable (:data:`explainers.hooks.Reshape`) turns the layer's output ``[B, ...]``
            into ``[B, C, h, w]`` (timm models: prefix tokens dropped, NHWC permuted).
        steps, baseline: integrated gradients' number of path points and reference input.
        also: more targets explained in the same backward: ``also(logits [B, C], targets [B, k])
            -> [B, e]`` (e.g. a random class per sample); they follow the chosen targets in
            ``Explanation.targets [B, k + e]`` and in the maps.
    """
    spec = _check_call(method, layer, reshape, x)
    contrasts = _check_contrasts(contrasts)
    batch = x.shape[0]

    if method == "integrated_gradients":
        if steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        x = x.to(result_dtype(x.dtype))  # the path is built in float32, cast on entry
        ref = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
        # Right Riemann sum: the last path point is x itself, so its logits are the clean ones.
        fracs = torch.arange(1, steps + 1, dtype=x.dtype, device=x.device) / steps
        inp = (ref + fracs.view(-1, 1, 1, 1, 1) * (x - ref)).flatten(0, 1)
    else:
        inp = x

    chosen: dict[str, Tensor] = {}

    def rows_fn(logits: Tensor) -> Tensor:
        clean = logits[-batch:]
        c = clean.shape[1]
        if targets is None:
            if not 1 <= topk <= c:
                raise ConfigError(f"topk={topk} must be between 1 and the class count {c}")
            t = clean.topk(topk, dim=1).indices
        else:
            t = _check_targets(targets.to(x.device), c, batch)
        if also is not None:
            t = torch.cat([t, also(clean, t).to(t)], dim=1)
        if c < 2 and tuple(contrasts) != ("original",):
            raise ConfigError("contrasts other than 'original' need at least 2 classes")
        chosen["targets"], chosen["logits"] = t, clean
        reps = logits.shape[0] // batch
        t_all = t.repeat(reps, 1)
        rival_all = rivals(clean, t).repeat(reps, 1)
        rows = contrast_rows(logits, t_all, rival_all, contrasts, prob_weighted=not spec.linear)
        return rows.flatten(0, 1)

    if method == "fullgrad":
        if reshape is not None:
            raise ConfigError("fullgrad explains the input: reshape must be None")
        maps, _ = fullgrad_vjp(model, inp, rows_fn)  # [n_contrasts * k, B, H, W]
    else:
        act, grads, _ = forward_vjp(model, inp, layer, rows_fn)
    t = chosen["targets"]
    k = t.shape[1]
    if method == "integrated_gradients":
        grads = grads.unflatten(1, (steps, batch)).mean(dim=1)
        act = (x - ref).to(grads.dtype)
    if method != "fullgrad":
        act, grads = reshape_pair(resolve_reshape(reshape), act, grads)
        maps = spec(act, grads)  # [n_contrasts * k, B, ...]
    maps = maps.unflatten(0, (len(contrasts), k)).movedim(2, 1)  # [n, B, k, ...]
    return Explanation(
        targets=t,
        logits=chosen["logits"],
        maps={name: maps[i] for i, name in enumerate(contrast_names(contrasts))},
        method=method,
        layer=layer,
    )


def explain_rows(
    model: nn.Module,
    x: Tensor,
    targets: Tensor,
    which: Tensor,
    contrasts: Sequence[ContrastArg],
    method: str = "gradient",
    layer: str | None = None,
    reshape: str | Reshape | None = None,
    check_targets: bool = False,
) -> tuple[Tensor, Tensor]:
    """Maps where every input picks its own contrasts: ONE forward, one VJP row per input.

    Row ``r`` of input ``i`` is the VJP row of contrast ``contrasts[which[r, i]]`` for class
    ``targets[i]`` (rows from :func:`explainers.contrasts.contrast_rows`, so each map equals
    ``explain(model, x[i:i+1], method, layer, targets=targets[i:i+1], contrasts=(that one,))``).
    ``which [N]`` is one row per input (``grad_outputs [1, N, C]``): e.g. the gradient-sign runs of
    many (contrast, step count) pairs, each moving along its own contrast, in one pass;
    ``which [R, N]`` gives R rows per input (e.g. every contrast at the clean image).

    Args:
        model, x, method, layer, reshape: as for :func:`explain` (not integrated_gradients).
        targets: LongTensor ``[N]``.
        check_targets: check that targets lie in ``[0, C)`` (one host sync); per-step loops pass
            False and validate once, at their own entry.
        which: LongTensor ``[N]`` or ``[R, N]`` of indices into ``contrasts``.
        contrasts: contrasts as :func:`explain` takes them.

    Returns:
        ``(maps, logits)``: maps ``[R, N, ...]`` (``[N, ...]`` when ``which`` is ``[N]``; float32,
        float64 for a float64 model) and the logits ``[N, C]`` at ``x``, detached.
    """
    spec = _check_call(method, layer, reshape, x)
    if method in ("integrated_gradients", "fullgrad"):
        raise ConfigError(f"explain_rows does not take {method} (use explain)")
    contrasts = _check_contrasts(contrasts)
    n = x.shape[0]
    idx = which if which.dim() == 2 else which[None]
    if targets.shape != (n,) or idx.dim() != 2 or idx.shape[1] != n:
        raise ConfigError(
            f"targets must be [N] and which [N] or [R, N] with N = {n}, got "
            f"{tuple(targets.shape)} and {tuple(which.shape)}"
        )

    def rows_fn(logits: Tensor) -> Tensor:
        t = _check_targets(targets, logits.shape[1], n) if check_targets else targets[:, None]
        every = contrast_rows(logits, t, rivals(logits, t), contrasts,
                              prob_weighted=not spec.linear)[:, 0]  # [n_contrasts, N, C]
        return every.gather(0, idx[..., None].expand(-1, -1, logits.shape[1]))  # [R, N, C]

    act, grads, logits = forward_vjp(model, x, layer, rows_fn)
    act, grads = reshape_pair(resolve_reshape(reshape), act, grads)
    maps = spec(act, grads)
    return (maps if which.dim() == 2 else maps[0]), logits
