"""Contrasts as scalar functions of the logits: ``z(y, t)`` and its gradient rows ``dz/dy``.

Any explained output that is a function of the logits alone has the gradient
``dz/dx = sum_c (dz/dy_c) dy_c/dx``: its VJP row is ``dz/dy``, computed on the ``[N, C]`` logits
(``torch.func.vmap(torch.func.grad(z))`` over every sample and target, no network pass) and fed
to the engine's one batched VJP beside the closed-form rows of ``explainers.contrasts``.

A contrast function takes the logits ``y [C]`` of one input and the target ``t`` (a 0-dim long
tensor) and returns a 0-dim tensor; it is written for one input (vmap batches it), so it can
not mix inputs by mistake. Built in:

- ``finer`` (Finer-CAM, official linear form): ``z = y_t - gamma * mean_{j in N_T(t)} y_j``
  with ``N_T(t)`` the ``top`` classes ``j != t`` with the closest logits ``|y_j - y_t|``
  (defaults ``gamma = 0.6``, ``top = 3``).
- ``finer_weighted`` (pytorch-grad-cam's ``FinerWeightedTarget``):
  ``z = sum_j p_j (y_t - alpha y_j) / (sum_j p_j + 1e-9)`` over the same ``N_T(t)``, ``p =
  softmax(y)`` over all classes, the gradient flowing through ``p_j`` (defaults ``alpha = 1``,
  ``top = 3``: pytorch-grad-cam's ``comparison_categories = [1, 2, 3]``, its ranks by
  ``|y_j - y_t|`` after ``t`` itself at rank 0).

The neighbour set ``N_T(t)`` is picked per input from its own logits (for integrated gradients
at each path point, as ``weighted``'s alpha is); picking is not differentiated.
:data:`PAPER_FUNCTIONS` holds the paper's four contrasts in this form (the closed-form rows stay
the engine's route for them: they need no vmap; the tests check that both agree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor

from errors import ConfigError

LogitFn = Callable[[Tensor, Tensor], Tensor]

FINER_GAMMA = 0.6
FINER_TOP = 3
FINER_ALPHA = 1.0


@dataclass(frozen=True)
class LogitContrast:
    """A named contrast ``fn(y [C], t []) -> z []`` and the options it was built with."""

    name: str
    fn: LogitFn = field(compare=False)
    options: Mapping[str, float] = field(default_factory=dict, compare=False)

    def __call__(self, y: Tensor, t: Tensor) -> Tensor:
        return self.fn(y, t)


def _pick(y: Tensor, t: Tensor) -> Tensor:
    return y.gather(0, t[None].long())[0]


def nearest(y: Tensor, t: Tensor, top: int) -> Tensor:
    """Indices ``[min(top, C - 1)]`` of the classes ``j != t`` whose logits are closest to ``y_t``
    (not differentiated; with fewer than ``top`` other classes, all of them)."""
    y = y.detach()
    dist = (y - _pick(y, t)).abs().scatter(0, t[None].long(), float("inf"))
    return (-dist).topk(min(top, y.shape[0] - 1)).indices


def finer(y: Tensor, t: Tensor, gamma: float = FINER_GAMMA, top: int = FINER_TOP) -> Tensor:
    """``y_t - gamma * mean`` of the ``top`` nearest other logits (Finer-CAM, linear form)."""
    return _pick(y, t) - gamma * y.gather(0, nearest(y, t, top)).mean()


def finer_weighted(y: Tensor, t: Tensor, alpha: float = FINER_ALPHA,
                   top: int = FINER_TOP) -> Tensor:
    """``sum_j p_j (y_t - alpha y_j) / (sum_j p_j + 1e-9)`` over the ``top`` nearest classes."""
    idx = nearest(y, t, top)
    p = y.softmax(dim=0).gather(0, idx)
    return (p * (_pick(y, t) - alpha * y.gather(0, idx))).sum() / (p.sum() + 1e-9)


def _original(y: Tensor, t: Tensor) -> Tensor:
    return _pick(y, t)


def _weighted(y: Tensor, t: Tensor) -> Tensor:
    # y_t - sum_s alpha_s y_s with alpha = softmax(y, y_t = -inf) held constant (the paper's
    # contrast: the weights are not differentiated)
    alpha = y.detach().scatter(0, t[None].long(), float("-inf")).softmax(dim=0)
    return _pick(y, t) - (alpha * y).sum()


def _prob(y: Tensor, t: Tensor) -> Tensor:
    return _pick(y.softmax(dim=0), t)


def _mean(y: Tensor, t: Tensor) -> Tensor:
    others = y.sum() - _pick(y, t)
    return _pick(y, t) - others / (y.shape[0] - 1)


def _max(y: Tensor, t: Tensor) -> Tensor:
    rival = y.detach().scatter(0, t[None].long(), float("-inf")).argmax()
    return _pick(y, t) - _pick(y, rival)


# The paper's contrasts as functions of the logits (``weighted`` for the linear methods;
# gradcam++'s ``weighted`` is the gradient of p_t, ``"prob"`` here).
PAPER_FUNCTIONS: dict[str, LogitFn] = {
    "original": _original, "weighted": _weighted, "mean": _mean, "max": _max, "prob": _prob,
}
FUNCTION_CONTRASTS: tuple[str, ...] = ("finer", "finer_weighted")
# Option name -> (contrasts that take it, type): the evaluation callback's finer_<option>.
OPTIONS: dict[str, tuple[tuple[str, ...], type]] = {
    "gamma": (("finer",), float), "top": (("finer", "finer_weighted"), int),
    "alpha": (("finer_weighted",), float),
}


def named(name: str, **options: float) -> LogitContrast:
    """The built-in function contrast ``name`` with ``options`` (see :data:`OPTIONS`)."""
    if name not in FUNCTION_CONTRASTS:
        raise ConfigError(f"{name!r} is not a function contrast; choose from {FUNCTION_CONTRASTS}")
    bad = [k for k in options if k not in OPTIONS or name not in OPTIONS[k][0]]
    if bad:
        raise ConfigError(f"contrast {name!r} takes no option {bad}; it takes "
                          f"{[k for k, (names, _) in OPTIONS.items() if name in names]}")
    if "top" in options and (int(options["top"]) != options["top"] or options["top"] < 1):
        raise ConfigError(f"contrast {name!r}: top={options['top']} must be an integer >= 1")
    fn = finer if name == "finer" else finer_weighted
    return LogitContrast(name, partial(fn, **options), dict(options))


def as_contrast(item: str | LogitFn) -> str | LogitContrast:
    """A contrast name, a :class:`LogitContrast`, or a bare callable (named by ``__name__``)."""
    if isinstance(item, str):
        return named(item) if item in FUNCTION_CONTRASTS else item
    if isinstance(item, LogitContrast):
        return item
    if callable(item):
        name = getattr(item, "__name__", "") or type(item).__name__
        return LogitContrast(name, item)
    raise ConfigError(f"a contrast is a name or a function z(logits [C], target) -> scalar, got "
                      f"{type(item).__name__}")


def with_options(contrasts: Sequence[str], options: Mapping[str, float] | None = None
                 ) -> tuple[str | LogitContrast, ...]:
    """Names -> what ``explain`` takes: the function contrasts built with ``options`` (each
    option goes to the contrasts that take it, e.g. ``{"gamma": 0.5, "top": 2}``)."""
    options = dict(options or {})
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise ConfigError(f"unknown contrast options {unknown}; choose from {sorted(OPTIONS)}")
    return tuple(
        named(c, **{k: v for k, v in options.items() if c in OPTIONS[k][0]})
        if c in FUNCTION_CONTRASTS else c for c in contrasts)


def function_rows(logits: Tensor, targets: Tensor, fn: LogitFn) -> Tensor:
    """Rows ``dz/dy [N, k, C]`` of ``z = fn(y_n, t_nk)``; logits ``[N, C]``, targets ``[N, k]``.

    One ``vmap(grad(fn))`` over the ``N * k`` (input, target) pairs, on the detached logits.
    """
    n, c = logits.shape
    k = targets.shape[1]
    y = logits.detach()[:, None, :].expand(n, k, c).reshape(n * k, c)
    try:
        rows = torch.func.vmap(torch.func.grad(fn))(y, targets.reshape(n * k))
    except (RuntimeError, TypeError, ValueError) as err:
        raise ConfigError(
            f"contrast function {getattr(fn, '__name__', fn)!r} failed on logits [C] and a "
            f"0-dim target: {str(err).splitlines()[0]}; it must return a scalar tensor and be "
            "vmap-able (no .item(), no data-dependent Python control flow)") from err
    if rows.shape != (n * k, c):
        raise ConfigError(f"contrast function {getattr(fn, '__name__', fn)!r} must return a "
                          f"scalar per input, got rows {tuple(rows.shape)}")
    return rows.reshape(n, k, c)
