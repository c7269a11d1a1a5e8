"""Undefined results: written as JSON ``null`` with the reason recorded, never as bare NaN.

A mean over no samples is 0/0. Python's ``json`` writes it as ``NaN``, which is not JSON (strict
parsers such as JavaScript's ``JSON.parse`` refuse the file). So ``results.json`` keeps its flat
``{key: number}`` mapping with ``null`` for such a value, and ``run.json`` says why, under
``"undefined": {key: reason}``; ``report.md`` counts them and the sweep quotes the reason.
Readers of results.json turn ``null`` back into NaN (``results.files.read_results_json``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from results.schema import GRADIENT_SIGN, PREFIX, ResultKey

NO_SAMPLE = "no sample selected"
NO_POSITIVE_MASS = "no selected sample's map has positive mass inside the image"
NOT_FINITE = "0/0 or an overflow over the selected samples"
# Quantities that leave out a sample whose map has no positive mass (metrics/part_localization).
_MASS_SHARES = ("differ_share", "shared_share")


def is_undefined(value: Any) -> bool:
    """A float that JSON cannot hold (NaN, +-Infinity)."""
    return isinstance(value, float) and not math.isfinite(value)


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN / Infinity (at any depth) replaced by None."""
    if is_undefined(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def _count_key(key: ResultKey) -> str | None:
    """The ``eval/count/...`` key that counts the samples behind ``key``'s value."""
    if key.method is None:
        return None
    if key.method == GRADIENT_SIGN:
        return f"{PREFIX}/count/{GRADIENT_SIGN}"
    if key.quantity in _MASS_SHARES or key.quantity.startswith("pointing_"):
        return f"{PREFIX}/count/{key.method}/{key.t}"
    return f"{PREFIX}/count/{key.method}"


def undefined_reasons(results: Mapping[str, float], threshold: float | None = None
                      ) -> dict[str, str]:
    """``{key: reason}`` for every undefined value of a run's results (a ``null`` in
    results.json); ``threshold``: the run's ``--evaluation.threshold``."""
    selected_by = (f" (none passed --evaluation.threshold {threshold:g})"
                   if threshold is not None else "")
    out: dict[str, str] = {}
    for text, value in results.items():
        if not (value is None or is_undefined(value)):
            continue
        key = ResultKey.try_parse(text)
        count_key = _count_key(key) if key is not None else None
        count = results.get(count_key) if count_key else None
        if count is not None and not is_undefined(count) and count == 0:
            why = NO_SAMPLE + ("" if key is not None and key.method == GRADIENT_SIGN
                               else selected_by)
        elif key is not None and key.quantity in _MASS_SHARES:
            why = NO_POSITIVE_MASS
        else:
            why = NOT_FINITE
        out[text] = why
    return out


def summary(reasons: Mapping[str, str]) -> str:
    """``"3 (no sample selected: 2; ...: 1)"``, or ``"none"``: report.md's count."""
    if not reasons:
        return "none"
    counts = Counter(reasons.values())
    parts = "; ".join(f"{why}: {n}" for why, n in counts.most_common())
    return f"{len(reasons)} values are null in results.json ({parts})"
