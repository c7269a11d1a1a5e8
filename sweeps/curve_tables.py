"""The faithfulness curves over a sweep: one AUC table per score and baseline, a row per dataset x
method x t, the AUC of each curve and SRG for ori and wtd, and how many samples wtd wins (the
SRG's wins, of the curves' samples). Runs without curves are left out of these tables."""

from __future__ import annotations

from collections.abc import Sequence

from results.schema import AXES, CURVE_KINDS, ResultKey, axis_values, parse_results
from results.tables import Cell, Table, latex, markdown, number, text
from sweeps.runs import Run

CONTRASTS = ("original", "weighted")


def curve_tables(runs: Sequence[Run]) -> list[Table]:
    """One :class:`Table` per (score, baseline) found in the runs' ``auc`` keys."""
    parsed = [(run, parse_results(run.results)) for run in runs]
    parsed = [(run, keys) for run, keys in parsed if any(k.quantity == "auc" for k in keys)]
    keys = [k for _, ks in parsed for k in ks]
    tables = []
    for score in axis_values(keys, "score", quantity="auc"):
        for baseline in axis_values(keys, "baseline", quantity="auc"):
            columns = [(AXES["curve"].title(c), AXES["contrast"].title(m))
                       for c in CURVE_KINDS for m in CONTRASTS] + [("SRG", "wins")]
            table = Table(f"Curve AUC of {AXES['score'].title(score)}, "
                          f"{AXES['baseline'].title(baseline)}",
                          ["data", "method", "t", "n"], columns,
                          name=f"curves_{score}_{baseline}",
                          heading=f"Faithfulness curves: AUC of {score}, {baseline}")
            for run, ks in parsed:
                for method in axis_values(ks, "method", quantity="auc", baseline=baseline):
                    for t in axis_values(ks, "t", quantity="auc", method=method):
                        row = _row(run, method, t, baseline, score)
                        if any(c.value is not None for c in row[4:]):
                            table.rows.append(row)
            if table.rows:
                tables.append(table)
    return tables


def _row(run: Run, method: str, t: str, baseline: str, score: str) -> list[Cell]:
    r = run.results
    n = r.get(str(ResultKey("curve_count", method)))
    cells = [text(run.dataset_label), text(AXES["method"].title(method)), text(t),
             number(n, 0) if n is not None else text("—")]
    for curve in CURVE_KINDS:
        for contrast in CONTRASTS:
            key = ResultKey("auc", method, t, baseline, contrast=contrast, curve=curve,
                            score=score)
            cells.append(number(r.get(str(key))))
    wins = r.get(str(ResultKey("auc_wins", method, t, baseline, contrast="weighted",
                               curve="srg", score=score)))
    cells.append(number(wins, 0) if wins is not None else text("—"))
    return cells


def curve_tables_markdown(runs: Sequence[Run]) -> str:
    """The curve tables as markdown sections ('' when no run has curves)."""
    out = []
    for table in curve_tables(runs):
        out += [f"## {table.heading}", "",
                "Del: deletion, most relevant first (lower is better); Del-LeRF: least relevant "
                "first, Ins: insertion, SRG = AUC(Del-LeRF) - AUC(Del) (higher is better). "
                "wins: samples whose weighted map has the higher SRG, of n.", "",
                markdown(table), ""]
    return "\n".join(out)


def curve_tables_latex(runs: Sequence[Run]) -> str:
    """The curve tables in LaTeX ('' when no run has curves)."""
    return "\n".join(latex(t) for t in curve_tables(runs))
