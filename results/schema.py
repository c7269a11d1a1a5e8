"""The result schema: every ``eval/...`` key whynot writes, in one place.

A key names a quantity and its coordinates on the protocol's axes::

    eval/<relprob|prob|prob_drop>/<method>/<t>/<baseline>/<mode>/<masking>/<contrast>
    eval/<clean_relprob|clean_prob>/<method>/<t>                            clean images
    eval/count/<method>                                                     samples in the tables
    eval/<delta_acc|delta_logit|delta_prob>/gradient/<contrast>/n<k>        gradient sign (Fig. 3)
    eval/<clean_acc|clean_logit|clean_prob>/gradient, eval/count/gradient
    eval/<differ_share|shared_share|pointing_differ|pointing_shared>/<method>/<t>/<contrast>
    eval/count/<method>/<t>                                                 localisation samples
    eval/num_samples                                                        test images seen
    eval/<random_logit_ssim|random_logit_spearman|random_logit_lower>/<method>/<contrast>
    eval/<mprt_spearman|mprt_ssim>/<method>/<contrast>/<layer>              <step>_<layer name>
    eval/diff_<quantity>/<that quantity's coordinates>/<stat>               paired difference
                                                                            <contrast> - original

A paired key (``diff_relprob``, ``diff_delta_prob``, ``diff_differ_share``, ...) holds, for one
cell of a compared quantity, a statistic of the per-sample differences between the key's
contrast and the original map: ``stat`` is mean, se (standard error), lo / hi (the 95 % interval,
normal approximation) or n (pairs). NaN where undefined (no pair; fewer than 2 for se, lo, hi).

:class:`ResultKey` formats and parses them; :data:`QUANTITIES` says which axes each quantity has
(a quantity name may come in two shapes, told apart by the number of coordinates, as
``clean_prob/<method>/<t>`` and ``clean_prob/gradient``); :data:`AXES` holds the allowed values of
each axis in the paper's order and their titles in tables; :data:`TABLES` says how the one-run
tables show the quantities. Adding a quantity means declaring it here and producing it in its
metric: the report, console, W&B and sweep tables read this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from errors import ConfigError
from explainers.contrasts import ALL_CONTRASTS

# Changes whenever the protocol changes, so that results of different protocols are never mixed
# silently (run.json carries it, the sweep tables keep one version).
PROTOCOL_VERSION = 1
PREFIX = "eval"
# The pseudo-method of the gradient-sign experiment's keys (it explains the input's gradient).
GRADIENT_SIGN = "gradient"

RANKS = ("t1", "t2")
BASELINES = ("blur", "zeros", "mean")
MODES = ("pos", "neg")
MASKINGS = ("threshold", "equal")
GRADIENT_SIGN_SCORES = ("acc", "logit", "prob")
# Faithfulness curves: their kinds (srg: the gain between the two deletions), their scores, and
# the baselines a curve may use (the masking's three and ROAD's noisy linear imputation).
CURVE_KINDS = ("deletion", "deletion_lerf", "insertion", "srg")
CURVE_SCORES = ("logit", "prob", "relprob")
CURVE_BASELINES = (*BASELINES, "road")
# The pair every comparison of the paper is about: the ordinary map against the weighted contrast.
PAPER_CONTRASTS = ("original", "weighted")
# The statistics of a paired difference (metrics.functional.paired computes them in this order).
PAIRED_STATS = ("mean", "se", "lo", "hi", "n")
PAIRED_PREFIX = "diff_"


@dataclass(frozen=True)
class Axis:
    """One coordinate of a key: its allowed values (None: any name) in table order, and titles."""

    name: str
    values: tuple[str, ...] | None
    titles: Mapping[str, str]
    description: str

    def title(self, value: str) -> str:
        """How tables head a column of ``value`` (``"blur"`` -> ``"GaussBlur"``)."""
        return self.titles.get(value, value)

    def order(self, found: Iterable[str]) -> list[str]:
        """``found`` without repeats, in the axis's order (unknown values last, by name)."""
        known = self.values or tuple(self.titles)
        rank = {v: i for i, v in enumerate(known)}
        return sorted(dict.fromkeys(found), key=lambda v: (rank.get(v, len(rank)), _natural(v)))

    def check(self, value: str) -> None:
        """A ValueError naming the allowed values unless ``value`` is one of them."""
        if not value or "/" in value:
            raise ConfigError(f"{self.name} {value!r}: a result key part is a non-empty name "
                              "without '/'")
        if self.values is not None and value not in self.values:
            raise ConfigError(f"{self.name} {value!r}: choose from {self.values}")


def _natural(value: str) -> tuple[object, ...]:
    """``"n10"`` after ``"n2"``: digits compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", value))


METHOD_TITLES = {"linear_approx": "LA", "gradcam": "GC", "xgradcam": "XGC", "gradcam++": "GC++",
                 "gradient": "Grad", "input_x_gradient": "IxG", "integrated_gradients": "IG",
                 "fullgrad": "FG"}
AXES: dict[str, Axis] = {
    "method": Axis("method", None, METHOD_TITLES,
                   "explanation method (explainers.METHODS); 'gradient' for the gradient-sign "
                   "experiment"),
    "t": Axis("t", RANKS, {}, "target rank: t1, t2 = the top-2 predictions of the clean image"),
    "baseline": Axis("baseline", BASELINES, {"blur": "GaussBlur", "zeros": "Zeros",
                                             "mean": "ChMean"},
                     "what replaces removed pixels: Gaussian blur, zeros, the channel mean"),
    "mode": Axis("mode", MODES, {"pos": "Pos", "neg": "Neg"},
                 "which region is kept: the map's positive (pos) or negative (neg) pixels"),
    "masking": Axis("masking", MASKINGS, {},
                    "threshold: the sign of the map; equal: the same pixel count for every "
                    "contrast"),
    "contrast": Axis("contrast", ALL_CONTRASTS, {"original": "ori", "weighted": "wtd",
                                             "finer": "finer", "finer_weighted": "finer_w"},
                     "explained output: original y_t, weighted contrast, mean, max, Finer-CAM's "
                     "linear (finer) and softmax-weighted (finer_weighted) contrasts"),
    "steps": Axis("steps", None, {}, "gradient-sign steps n (written n<k>)"),
    "layer": Axis("layer", None, {},
                  "parameter-randomisation cascade step: <step>_<the layer randomised last>, "
                  "head first"),
    # faithfulness curves (metrics/curves.py, docs/curves.md)
    "curve": Axis("curve", CURVE_KINDS, {"deletion": "Del", "deletion_lerf": "Del-LeRF",
                                         "insertion": "Ins", "srg": "SRG"},
                  "deletion (most relevant first), deletion_lerf (least relevant first), "
                  "insertion (most relevant first); srg = AUC(deletion_lerf) - AUC(deletion)"),
    "score": Axis("score", CURVE_SCORES, {"logit": "y_t", "prob": "p_t", "relprob": "r_t"},
                  "what a curve records: the logit y_t, the softmax p_t, the relative "
                  "probability r_t"),
    "point": Axis("point", None, {}, "a curve's step i (written p<i>)"),
    "stat": Axis("stat", PAIRED_STATS, {"mean": "diff"},
                 "statistic of the paired difference <contrast> - original: mean, se (standard "
                 "error), lo / hi (95 % interval), n (pairs)"),
}
AXES["baseline"] = replace(AXES["baseline"], values=CURVE_BASELINES,
                           titles={**AXES["baseline"].titles, "road": "ROAD"})
KEY_AXES = tuple(AXES)  # the order coordinates take in a key


@dataclass(frozen=True)
class Quantity:
    """A reported quantity: its name, its axes (in key order) and how it reads."""

    name: str
    axes: tuple[str, ...]
    title: str
    description: str
    higher_is_better: bool | None = None

    @property
    def shape(self) -> tuple[str, int]:
        """``(name, number of coordinates)``: unique over :data:`QUANTITIES`."""
        return self.name, len(self.axes)


def paired_quantity(name: str, axes: tuple[str, ...], higher_is_better: bool | None
                    ) -> Quantity:
    """The paired difference ``diff_<name>`` of a compared quantity: its axes plus ``stat``; the
    key's contrast is the one compared with the original map."""
    return Quantity(PAIRED_PREFIX + name, (*axes, "stat"), f"{name} - ori",
                    f"per-sample difference of {name} between the contrast and the original "
                    "map: mean, standard error, 95 % interval, pairs", higher_is_better)


_PERTURBED = ("method", "t", "baseline", "mode", "masking", "contrast")
_LOCALISED = ("method", "t", "contrast")
_CURVED = ("method", "t", "baseline", "contrast", "curve", "score")
QUANTITIES: tuple[Quantity, ...] = (
    Quantity("num_samples", (), "test images", "test images evaluated (all ranks)"),
    Quantity("relprob", _PERTURBED, "r_t",
             "relative probability exp(y_t) / (exp(y_t1) + exp(y_t2)) of the perturbed image, "
             "the paper's number (Pos: higher is better; Neg: lower)"),
    Quantity("prob", _PERTURBED, "p_t", "softmax probability of t on the perturbed image"),
    Quantity("prob_drop", _PERTURBED, "p_t drop",
             "clean p_t minus perturbed p_t"),
    Quantity("clean_relprob", ("method", "t"), "r_t",
             "relative probability of t on the clean image (the tables' r_t column)"),
    Quantity("clean_prob", ("method", "t"), "p_t", "softmax probability of t on the clean image"),
    Quantity("count", ("method",), "n",
             "samples that pass the p_t2 threshold and enter the perturbation tables; for "
             "method 'gradient', the gradient-sign experiment's samples"),
    *(Quantity(f"delta_{s}", ("method", "contrast", "steps"), f"delta_{s}",
               f"perturbed minus clean {name} after n gradient-sign steps", True)
      for s, name in zip(GRADIENT_SIGN_SCORES, ("top-1 accuracy", "logit y_t", "softmax p_t"),
                         strict=True)),
    *(Quantity(f"clean_{s}", ("method",), f"clean {s}",
               f"{name} of the clean images in the gradient-sign experiment")
      for s, name in zip(GRADIENT_SIGN_SCORES, ("top-1 accuracy", "logit y_t", "softmax p_t"),
                         strict=True)),
    Quantity("differ_share", _LOCALISED, "differ",
             "share of the map's positive mass inside the parts where t1 and t2 differ", True),
    Quantity("shared_share", _LOCALISED, "shared",
             "share of the map's positive mass inside the parts t1 and t2 share", False),
    Quantity("pointing_differ", _LOCALISED, "differ",
             "share of samples whose map maximum lies in a part where t1 and t2 differ", True),
    Quantity("pointing_shared", _LOCALISED, "shared",
             "share of samples whose map maximum lies in a part t1 and t2 share", False),
    Quantity("count", ("method", "t"), "n",
             "samples that pass the p_t2 threshold and enter the localisation tables"),
    # paired differences <contrast> - original (direction of relprob / prob: by the mode)
    *(paired_quantity(q, _PERTURBED, None) for q in ("relprob", "prob")),
    *(paired_quantity(f"delta_{s}", ("method", "contrast", "steps"), True)
      for s in GRADIENT_SIGN_SCORES),
    *(paired_quantity(q, _LOCALISED, better) for q, better in (
        ("differ_share", True), ("shared_share", False), ("pointing_differ", True),
        ("pointing_shared", False))),
    Quantity("random_logit_ssim", ("method", "contrast"), "SSIM",
             "random-logit check: mean SSIM between the map of t1 and the map of a random other "
             "class s (maps normalised as the figures show them); lower = class-sensitive",
             False),
    Quantity("random_logit_spearman", ("method", "contrast"), "Spearman",
             "random-logit check: mean Spearman rank correlation between the maps of t1 and of "
             "the random class s; lower = class-sensitive", False),
    Quantity("random_logit_lower", ("method", "contrast"), "wins",
             "random-logit check: share of samples whose SSIM for this contrast is below the "
             "original map's (the pairs this contrast wins)", True),
    Quantity("mprt_spearman", ("method", "contrast", "layer"), "Spearman",
             "parameter randomisation: mean Spearman rank correlation between the trained "
             "model's map of t1 and the map after randomising the layers down to this step; "
             "lower = the map depends on the weights", False),
    Quantity("mprt_ssim", ("method", "contrast", "layer"), "SSIM",
             "parameter randomisation: mean SSIM between the trained and the randomised "
             "model's maps of t1", False),
    Quantity("auc", _CURVED, "AUC",
             "area under the mean curve over the fraction perturbed (trapezoid rule); curve srg: "
             "AUC(deletion_lerf) - AUC(deletion)"),
    Quantity("auc_wins", _CURVED, "wins",
             "samples whose weighted map beats their original map (deletion: lower AUC; the "
             "others: higher); contrast is always 'weighted'", True),
    Quantity("curve", (*_CURVED, "point"), "mean",
             "the mean curve: the score's mean over samples at step i"),
    Quantity("curve_fraction", ("curve", "point"), "fraction",
             "the fraction of the image perturbed at step i"),
    Quantity("curve_count", ("method",), "n",
             "samples in the curves (those that pass the p_t2 threshold)"),
    # paired differences of the curves' AUC (direction: by the curve) and the random-logit check
    paired_quantity("auc", _CURVED, None),
    *(paired_quantity(f"random_logit_{q}", ("method", "contrast"), False)
      for q in ("ssim", "spearman")),
)
_BY_SHAPE: dict[tuple[str, int], Quantity] = {q.shape: q for q in QUANTITIES}
assert len(_BY_SHAPE) == len(QUANTITIES), "two quantities with one name and one shape"


def quantity(name: str, axes: int | None = None) -> Quantity:
    """The declared quantity ``name`` (with ``axes`` coordinates where the name has two shapes)."""
    found = [q for q in QUANTITIES if q.name == name and axes in (None, len(q.axes))]
    if not found:
        raise ConfigError(f"{name!r} is not a result quantity "
                          f"(results.schema.QUANTITIES: {sorted({q.name for q in QUANTITIES})})")
    return found[0]


@dataclass(frozen=True)
class ResultKey:
    """One ``eval/...`` key: a quantity and its coordinates (None where it has no such axis).

    ``str(key)`` formats it; :meth:`parse` reads it back. Building a key checks the coordinates
    against the quantity's axes and each axis's allowed values.
    """

    quantity: str
    method: str | None = None
    t: str | None = None
    baseline: str | None = None
    mode: str | None = None
    masking: str | None = None
    contrast: str | None = None
    steps: int | None = None
    layer: str | None = None
    curve: str | None = None
    score: str | None = None
    point: str | None = None
    stat: str | None = None

    def __post_init__(self) -> None:
        given = tuple(a for a in KEY_AXES if getattr(self, a) is not None)
        spec = _BY_SHAPE.get((self.quantity, len(given)))
        if spec is None or spec.axes != given:
            shapes = [q.axes for q in QUANTITIES if q.name == self.quantity]
            raise ConfigError(f"result key {self.quantity!r} with {given}: the quantity takes "
                              f"{' or '.join(map(str, shapes)) or 'nothing (unknown quantity)'}")
        for axis in given:
            if axis == "steps":
                if not isinstance(self.steps, int) or self.steps < 1:
                    raise ConfigError(f"steps {self.steps!r}: a positive integer")
            else:
                AXES[axis].check(getattr(self, axis))

    @property
    def spec(self) -> Quantity:
        """The declared quantity this key belongs to."""
        return _BY_SHAPE[(self.quantity, sum(getattr(self, a) is not None for a in KEY_AXES))]

    def coordinates(self) -> dict[str, str | int]:
        """``{axis: value}`` of the axes this key has, in key order."""
        return {a: getattr(self, a) for a in self.spec.axes}

    def part(self, axis: str) -> str:
        """The key's text for ``axis`` (steps as ``n<k>``)."""
        value = getattr(self, axis)
        return f"n{value}" if axis == "steps" else str(value)

    def __str__(self) -> str:
        return "/".join((PREFIX, self.quantity, *(self.part(a) for a in self.spec.axes)))

    def with_(self, **changes: str | int | None) -> ResultKey:
        """A copy with some coordinates changed."""
        return replace(self, **changes)

    @classmethod
    def parse(cls, key: str) -> ResultKey:
        """The key of ``"eval/..."``; a ValueError says why a string is not one."""
        parts = key.split("/")
        if len(parts) < 2 or parts[0] != PREFIX:
            raise ConfigError(f"{key!r} is not a result key: it must start with '{PREFIX}/'")
        name, values = parts[1], parts[2:]
        spec = _BY_SHAPE.get((name, len(values)))
        if spec is None:
            raise ConfigError(f"{key!r} is not a result key: no quantity {name!r} with "
                              f"{len(values)} coordinates")
        coords: dict[str, str | int] = dict(zip(spec.axes, values, strict=True))
        if "steps" in coords:
            text = str(coords["steps"])
            if not re.fullmatch(r"n[1-9]\d*", text):
                raise ConfigError(f"{key!r} is not a result key: steps {text!r} is not n<k>")
            coords["steps"] = int(text[1:])
        return cls(name, **coords)  # type: ignore[arg-type]

    @classmethod
    def try_parse(cls, key: str) -> ResultKey | None:
        """:meth:`parse`, or None for a string that is not a result key."""
        try:
            return cls.parse(key)
        except ValueError:
            return None


def media_key(kind: str, name: str) -> str:
    """The W&B key of a run's table or figure: ``eval/table/<name>``, ``eval/heatmaps/<method>``.

    Not a result (no number): these keys never reach results.json, and :meth:`ResultKey.parse`
    refuses them.
    """
    return f"{PREFIX}/{kind}/{name}"


def parse_results(results: Mapping[str, float]) -> dict[ResultKey, float]:
    """The result keys of a flat results dict (other keys, such as a logger's, are left out)."""
    out = {}
    for text, value in results.items():
        key = ResultKey.try_parse(text)
        if key is not None:
            out[key] = value
    return out


def axis_values(keys: Iterable[ResultKey], axis: str, **where: str | None) -> list[str]:
    """The values of ``axis`` among ``keys`` whose coordinates match ``where``, in axis order.

    ``where`` may name ``quantity`` too: ``axis_values(keys, "masking", quantity="relprob")``.
    """
    found = []
    for key in keys:
        if all(getattr(key, k) == v for k, v in where.items()) and getattr(key, axis) is not None:
            found.append(key.part(axis))
    return AXES[axis].order(found) if axis in AXES else sorted(set(found))


# --------------------------------------------------------------------------- one-run tables
@dataclass(frozen=True)
class TableSpec:
    """How one kind of one-run table shows some quantities (console, report.md, W&B).

    One table per combination of the ``split`` axes; rows are the combinations of ``rows`` that
    have values; columns the combinations of ``quantities`` x ``columns`` (column groups: the
    first column coordinate). ``lead``: a quantity with the row axes shown as an extra first
    value column (the paper's clean p_t). ``contrasts``: the contrasts shown when present
    (others are left out of this table, not of results.json).
    """

    name: str
    title: str  # str.format with the split axes' values
    heading: str  # report.md's section title, str.format like ``title``
    text: str  # report.md's explanation under the heading
    quantities: tuple[str, ...]
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    split: tuple[str, ...] = ()
    lead: tuple[str, str] | None = None  # (quantity, column title)
    contrasts: tuple[str, ...] | None = None
    row_titles: bool = True  # method rows as GC / LA; False: the values as they are
    fixed: tuple[str, ...] = ()  # axes with a single value in this table, not shown


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "perturbation", "r_t on perturbed images, {masking} masking",
        "Relative probability r_t, {masking} masking",
        "r_t: clean relative probability (p_t in the paper); Pos: higher is better; Neg: lower "
        "is better.",
        quantities=("relprob",), rows=("method", "t"), columns=("baseline", "mode", "contrast"),
        split=("masking",), lead=("clean_relprob", "r_t"), contrasts=PAPER_CONTRASTS),
    TableSpec(
        "gradient_sign", "gradient sign (Fig. 3): perturbed - clean",
        "Gradient-sign perturbation (Figure 3)",
        "Perturbed minus clean, per contrast of the gradient and number of steps.",
        quantities=("delta_acc", "delta_logit", "delta_prob"), rows=("contrast",),
        columns=("steps",), row_titles=False, fixed=("method",)),
    TableSpec(
        "localisation", "part localisation: share of positive mass",
        "Part localisation (share of positive map mass)",
        "Share of each map's positive mass (upsampled to the image) inside the parts in which "
        "t1 and t2 differ (differ) and inside the parts they have in common (shared); the rest "
        "lies outside the annotated parts. A class-contrastive map should raise differ and "
        "lower shared.",
        quantities=("differ_share", "shared_share"), rows=("method", "t"),
        columns=("contrast",)),
    TableSpec(
        "pointing", "pointing game: map maximum in", "Pointing game (share of samples)",
        "Share of samples whose map maximum lies in a part in which t1 and t2 differ (differ) "
        "or in a part they share (shared); the rest point outside the annotated parts.",
        quantities=("pointing_differ", "pointing_shared"), rows=("method", "t"),
        columns=("contrast",)),
    TableSpec(
        "random_logit", "random-logit check: map of t1 vs a random class s",
        "Random-logit sanity check (similarity of the maps of t1 and of a random class)",
        "SSIM and Spearman rank correlation between each sample's map of t1 and its map of a "
        "random other class s (drawn per sample from its dataset index), maps normalised as the "
        "figures show them. Lower means the map depends on the class; a map that stays the same "
        "cannot say why t1 and not the others. wins: share of samples whose SSIM is below the "
        "original map's.",
        quantities=("random_logit_ssim", "random_logit_spearman", "random_logit_lower"),
        rows=("method",), columns=("contrast",)),
    TableSpec(
        "mprt", "parameter randomisation: {method}",
        "Parameter randomisation (MPRT), {method}",
        "Similarity of the trained model's map of t1 with the map after re-initialising the "
        "layers top down, cascading (each row randomises one more layer, the head first), on "
        "the first test samples. Lower means the map depends on the learned weights.",
        quantities=("mprt_spearman", "mprt_ssim"), rows=("layer",), columns=("contrast",),
        split=("method",), row_titles=False),
    TableSpec(
        "curves", "curve AUC, {score}, {baseline}",
        "Faithfulness curves: AUC of {score}, {baseline}",
        "Area under the mean curve over the fraction perturbed. Del: deletion, most relevant "
        "first (lower is better); Del-LeRF: least relevant first (higher is better); Ins: "
        "insertion (higher is better); SRG = AUC(Del-LeRF) - AUC(Del) (higher is better). wins: "
        "samples whose weighted map beats the original (of curve_count).",
        quantities=("auc", "auc_wins"), rows=("method", "t"), columns=("curve", "contrast"),
        split=("score", "baseline")),
)
# Quantities that are in results.json and W&B but in no one-run table (with the reason).
UNTABULATED: dict[str, str] = {
    "num_samples": "a sentence of report.md",
    "prob": "results.json only: the paper's tables report r_t",
    "prob_drop": "results.json only: the paper's tables report r_t",
    "clean_relprob": "the perturbation tables' clean r_t column",
    "clean_prob": "results.json only",
    "count": "sentences of report.md",
    "clean_acc": "a line under the gradient-sign table",
    "clean_logit": "a line under the gradient-sign table",
    **{q.name: "bold and win / loss / tie counts of the tables that show the compared quantity"
       for q in QUANTITIES if q.name.startswith(PAIRED_PREFIX)},
    "curve": "results.json, the curves figure and W&B line plots",
    "curve_fraction": "results.json: the x-axis of the curves",
    "curve_count": "a sentence of report.md",
}


def _every_quantity_has_a_place() -> None:
    tabulated = {q for t in TABLES for q in t.quantities}
    loose = {q.name for q in QUANTITIES} - tabulated - set(UNTABULATED)
    assert not loose, f"quantities with no table and no reason in UNTABULATED: {loose}"
    for spec in TABLES:
        for name in spec.quantities:
            axes = set(quantity(name).axes)
            assert axes == {*spec.rows, *spec.columns, *spec.split, *spec.fixed}, (spec.name, name)


_every_quantity_has_a_place()


def check_values(axis: str, values: Iterable[str]) -> tuple[str, ...]:
    """``values`` as a tuple: distinct, non-empty, each allowed on ``axis`` (else a ValueError
    that names the allowed values)."""
    values = tuple(values)
    allowed = AXES[axis].values
    if (not values or len(set(values)) != len(values)
            or (allowed is not None and any(v not in allowed for v in values))):
        raise ConfigError(f"{axis}s={values!r}: give distinct values from {allowed}")
    return values


# --------------------------------------------------------------------------- paired differences
def higher_is_better(key: ResultKey) -> bool | None:
    """Whether a larger value of ``key``'s quantity is better (of a paired key: a larger
    difference): relprob / prob by the mode (Pos higher, Neg lower), auc by the curve (deletion
    lower, the others higher), else the quantity's flag."""
    name = key.quantity.removeprefix(PAIRED_PREFIX)
    if name in ("relprob", "prob") and key.mode is not None:
        return key.mode == "pos"
    if name == "auc" and key.curve is not None:
        return key.curve != "deletion"  # deletion: lower is better; LeRF, insertion, SRG: higher
    return quantity(key.quantity, len(key.spec.axes)).higher_is_better


def paired_key(key: ResultKey, stat: str) -> ResultKey:
    """The paired key of a compared value's key: ``relprob/.../weighted`` -> ``diff_relprob/
    .../weighted/<stat>`` (the difference weighted - original of that cell)."""
    return ResultKey(PAIRED_PREFIX + key.quantity, **key.coordinates(), stat=stat)


def verdict(lo: float | None, hi: float | None, higher_is_better: bool | None = True
            ) -> str | None:
    """``"win"`` / ``"loss"`` for the compared contrast where the 95 % interval [lo, hi] of
    contrast - original excludes 0 (in the better / worse direction), ``"tie"`` where it holds 0,
    None where there is no interval (missing, NaN: fewer than 2 pairs) or no direction."""
    if lo is None or hi is None or lo != lo or hi != hi or higher_is_better is None:
        return None
    if lo > 0:
        return "win" if higher_is_better else "loss"
    if hi < 0:
        return "loss" if higher_is_better else "win"
    return "tie"


def paired_verdict(results: Mapping[str, float], key: ResultKey) -> str | None:
    """:func:`verdict` of the cell ``key`` (a compared value's key, its contrast not the
    original) from the paired keys in ``results``; None where they are missing."""
    if key.contrast in (None, "original") or (PAIRED_PREFIX + key.quantity,
                                               len(key.spec.axes) + 1) not in _BY_SHAPE:
        return None
    return verdict(results.get(str(paired_key(key, "lo"))),
                   results.get(str(paired_key(key, "hi"))), higher_is_better(key))
