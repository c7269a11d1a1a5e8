"""The tables of one run, built from its flat results dict as ``results.schema.TABLES`` says.

``run_tables(results)``: the paper-layout perturbation tables (one per masking), gradient-sign
perturbation, part localisation and the pointing game, each a ``results.tables.Table`` for the
console, report.md and W&B. Rows and columns follow the axes' order in the schema, whatever order
the keys come in (results.json is key-sorted: ``n10`` before ``n2``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

from results.schema import (
    AXES,
    TABLES,
    ResultKey,
    TableSpec,
    paired_key,
    paired_verdict,
    parse_results,
    quantity,
)
from results.tables import CONSOLE_WIDTH, Cell, Table, number, rich_tables, text

SIGNIFICANCE = ("bold: the better of the contrast and the original where the 95 % interval of "
                "their per-sample difference excludes 0; neither bold: a tie")


def _combos(keys: Sequence[ResultKey], axes: Sequence[str]) -> list[tuple[str, ...]]:
    """The value combinations of ``axes`` that occur in ``keys``, in the axes' order."""
    found = {tuple(k.part(a) for a in axes) for k in keys}
    orders = [AXES[a].order(v[i] for v in found) for i, a in enumerate(axes)]
    return [c for c in itertools.product(*orders) if c in found]


def _coords(axes: Sequence[str], values: Sequence[str]) -> dict[str, str | int]:
    return {a: int(v[1:]) if a == "steps" else v for a, v in zip(axes, values, strict=True)}


def _row_cell(axis: str, value: str, titles: bool) -> Cell:
    if axis == "t":
        return text(value, tex=f"$t_{value[1:]}$")
    return text(AXES[axis].title(value) if titles and axis == "method" else value)


def spec_tables(spec: TableSpec, results: Mapping[str, float]) -> list[Table]:
    """The tables of ``spec`` that ``results`` has values for (one per split combination)."""
    parsed = parse_results(results)
    axes = {*spec.rows, *spec.columns, *spec.split, *spec.fixed}
    mine = [k for k in parsed if k.quantity in spec.quantities and set(k.spec.axes) == axes]
    if spec.contrasts is not None:
        shown = [k for k in mine if k.contrast in spec.contrasts]
        mine = shown or mine  # other contrasts only where none of the usual ones ran
    tables = []
    for split in _combos(mine, spec.split) if spec.split else [()]:
        where = _coords(spec.split, split)
        keys = [k for k in mine if all(getattr(k, a) == v for a, v in where.items())]
        if not keys:
            continue
        where.update({a: getattr(keys[0], a) for a in spec.fixed})  # one value each
        columns = [(q, c) for q in spec.quantities
                   for c in _combos([k for k in keys if k.quantity == q], spec.columns)]
        one_quantity = len({q for q, _ in columns}) == 1 and len(spec.quantities) == 1
        paths = [
            (*(() if one_quantity else (quantity(q).title,)),
             *(AXES[a].title(v) for a, v in zip(spec.columns, c, strict=True)))
            for q, c in columns
        ]
        tally: dict[str, Tally] = {}
        placed: dict[ResultKey, tuple[int, int]] = {}  # cell of each key: (row, column)
        lead = [spec.lead[1]] if spec.lead else []
        table = Table(spec.title.format(**where), [*spec.rows, *lead], paths,
                      name="/".join(split) or spec.name, heading=spec.heading.format(**where))
        for row in _combos(keys, spec.rows):
            coords = {**where, **_coords(spec.rows, row)}
            cells = [_row_cell(a, v, spec.row_titles) for a, v in zip(spec.rows, row, strict=True)]
            if spec.lead:
                lead_key = ResultKey(spec.lead[0], **{a: coords[a] for a in spec.rows})
                cells.append(number(results.get(str(lead_key))))
            for q, col in columns:
                key = ResultKey(q, **coords, **_coords(spec.columns, col))
                placed[key] = (len(table.rows), len(cells))
                cells.append(number(results.get(str(key))))
            table.rows.append(cells)
        _mark_winners(table.rows, placed, results, tally)
        table.note = tally_note(tally)
        if table.rows and table.columns:
            tables.append(table)
    return tables


@dataclasses.dataclass
class Tally:
    """One contrast's comparisons with the original in a table: verdict counts, pair counts."""

    win: int = 0
    loss: int = 0
    tie: int = 0
    pairs: list[int] = dataclasses.field(default_factory=list)

    def text(self, contrast: str) -> str:
        """``"wtd vs ori: 5 wins, 1 loss, 6 ties of 12 cells; n = 116 pairs per cell"``."""
        w, lo, t = self.win, self.loss, self.tie
        ns = sorted(self.pairs)
        n = "" if not ns else (f"; n = {ns[0]} pairs per cell" if ns[0] == ns[-1]
                               else f"; n = {ns[0]}-{ns[-1]} pairs per cell")
        return (f"{AXES['contrast'].title(contrast)} vs ori: {w} win{'s' * (w != 1)}, {lo} "
                f"loss{'es' * (lo != 1)}, {t} tie{'s' * (t != 1)} of {w + lo + t} cells{n}")


def _mark_winners(rows: list[list[Cell]], placed: dict[ResultKey, tuple[int, int]],
                  results: Mapping[str, float], tally: dict[str, Tally]) -> None:
    """Bold a contrast's cell where it beats the original significantly, the original's where
    it beats every contrast compared with it; count wins, losses and ties per contrast and
    gather the cells' pair counts into ``tally``."""
    losses: dict[ResultKey, list[bool]] = {}  # original's key -> whether each contrast lost
    for key, (r, i) in placed.items():
        verdict = paired_verdict(results, key)
        if verdict is None or key.contrast is None:
            continue
        entry = tally.setdefault(key.contrast, Tally())
        setattr(entry, verdict, getattr(entry, verdict) + 1)
        n = results.get(str(paired_key(key, "n")))
        if n is not None:
            entry.pairs.append(int(n))
        losses.setdefault(key.with_(contrast="original"), []).append(verdict == "loss")
        if verdict == "win":
            rows[r][i] = dataclasses.replace(rows[r][i], bold=True)
    for ori, lost in losses.items():
        if all(lost) and ori in placed:
            r, i = placed[ori]
            rows[r][i] = dataclasses.replace(rows[r][i], bold=True)


def tally_note(tally: Mapping[str, Tally]) -> str:
    """Each compared contrast's counts and what bold means; empty without paired keys (results
    written before they existed)."""
    if not tally:
        return ""
    counts = "; ".join(tally[c].text(c) for c in AXES["contrast"].order(tally))
    return f"{counts}. {SIGNIFICANCE[0].upper()}{SIGNIFICANCE[1:]}."


def run_tables(results: Mapping[str, float]) -> list[Table]:
    """Every one-run table that ``results`` has values for, in ``TABLES`` order."""
    return [t for spec in TABLES for t in spec_tables(spec, results)]


def table_spec(name: str) -> TableSpec:
    """The schema's table spec called ``name``."""
    return next(s for s in TABLES if s.name == name)


def console_tables(results: Mapping[str, float], width: int = CONSOLE_WIDTH) -> list[object]:
    """Every table of a run as rich tables, each at most ``width`` characters wide (a wide table
    is split into several that repeat the key columns and keep each column group whole)."""
    return [r for t in run_tables(results) for r in rich_tables(t, width)]
