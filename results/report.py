"""report.md of one evaluation: how many images each table counts, every one-run table
(``results.run_tables``) under its heading and explanation, and the run's settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from results.run_tables import spec_tables
from results.schema import AXES, GRADIENT_SIGN, TABLES, ResultKey, axis_values, parse_results
from results.tables import markdown

_UNKNOWN = object()

EMPTY_SHARED_TEXT = (
    "shared is 0 in every row by construction: in this ground truth every annotated part differs "
    "between any two classes, so there is nothing shared to measure. This is the case with "
    "CUB's one-part bird box (with_ground_truth='box', or True without the part files); use "
    "with_ground_truth='parts' with the part and attribute files for part-level ground truth."
)


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_value_text(v) for v in value) or "[]"
    return str(value)


def settings_lines(info: Mapping[str, Any], indent: int = 0) -> list[str]:
    """Markdown bullets of the run's settings; nested mappings become sub-bullets and keys that
    start with ``_`` (framework internals such as ``_instantiator``, ``_class_path``) are left
    out."""
    out = []
    pad = "  " * indent
    for key, value in info.items():
        if str(key).startswith("_"):
            continue
        if isinstance(value, Mapping):
            inner = settings_lines(value, indent + 1)
            out.append(f"{pad}- **{key}**:" + ("" if inner else " —"))
            out += inner
        else:
            out.append(f"{pad}- **{key}**: {_value_text(value)}")
    return out


def count_sentences(results: Mapping[str, float], threshold: Any = _UNKNOWN) -> list[str]:
    """How many test images each table counts, as sentences ("129 of 500 test images have
    p_t2 > 0.1 ..."). ``threshold``: the p_t2 threshold (None: every sample counts)."""
    total = results.get(str(ResultKey("num_samples")))
    of = f" of {int(total)}" if total is not None else ""
    if threshold is _UNKNOWN:
        cond = "pass the p_t2 threshold"
    elif threshold is None:
        cond = "are counted (no p_t2 threshold)"
    else:
        cond = f"have p_t2 > {threshold:g}"
    out = []
    if total is not None:
        out.append(f"{int(total)} test images were evaluated.")
    keys = list(parse_results(results))
    methods = [m for m in axis_values(keys, "method", quantity="relprob")]
    counts = {m: results.get(str(ResultKey("count", m))) for m in methods}
    counts = {m: int(v) for m, v in counts.items() if v is not None}
    if counts:
        if len(set(counts.values())) == 1:
            n = next(iter(counts.values()))
            out.append(f"{n}{of} test images {cond} and enter the perturbation tables.")
        else:
            each = ", ".join(f"{AXES['method'].title(m)} {n}" for m, n in counts.items())
            out.append(f"The perturbation tables count ({cond}) {each}{of} test images.")
    loc = [int(results[str(k)]) for k in keys if k.quantity == "count" and k.t == "t1"]
    if loc:
        out.append(f"{loc[0]}{of} test images {cond} and enter the part localisation and "
                   "pointing-game tables (a map without positive mass is left out of its cell).")
    curves = [int(v) for k, v in parse_results(results).items() if k.quantity == "curve_count"]
    if curves:
        out.append(f"{curves[0]}{of} test images {cond} and enter the faithfulness curves.")
    grad = results.get(str(ResultKey("count", GRADIENT_SIGN)))
    if grad is not None:
        out.append(f"The gradient-sign perturbation uses {int(grad)}{of} test images (all of "
                   "them: it needs no threshold).")
    return out


def shared_is_structurally_empty(results: Mapping[str, float]) -> bool:
    """Whether every "shared" number is 0: the ground truth has no part two classes share."""
    shared = [v for k, v in parse_results(results).items()
              if k.quantity in ("shared_share", "pointing_shared")]
    return bool(shared) and all(v == 0.0 for v in shared)


def _clean_gradient_sign_lines(results: Mapping[str, float]) -> list[str]:
    keys = sorted(str(k) for k in parse_results(results)
                  if k.method == GRADIENT_SIGN and k.quantity.startswith("clean_"))
    return [f"- {k}: {results[k]:.4f}" for k in keys]


def render_report(
    results: Mapping[str, float], info: Mapping[str, Any] | None = None
) -> str:
    """report.md: counts as sentences, every one-run table with its explanation, then the
    settings (``info``: nested mappings; ``_``-keys dropped; ``info["evaluation"]["threshold"]``
    is the p_t2 threshold of the count sentences)."""
    info = info or {}
    evaluation = info.get("evaluation")
    threshold = evaluation.get("threshold", _UNKNOWN) if isinstance(evaluation, Mapping) \
        else _UNKNOWN
    out = ["# Contrastive evaluation report", ""]
    out += count_sentences(results, threshold)
    out.append("")
    empty_shared = shared_is_structurally_empty(results)
    for spec in TABLES:
        for table in spec_tables(spec, results):
            out += [f"## {table.heading or table.title}", "", spec.text, "", markdown(table), ""]
            if table.note:  # what bold means, wins / losses / ties, pairs per cell
                out += [table.note, ""]
            if spec.name == "gradient_sign":
                out += [*_clean_gradient_sign_lines(results), ""]
            if empty_shared and spec.name in ("localisation", "pointing"):
                out += [f"Note: {EMPTY_SHARED_TEXT}", ""]
    if info:
        out += ["## Settings", "", *settings_lines(info), ""]
    return "\n".join(out)
