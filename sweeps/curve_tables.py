"""The faithfulness curves over a sweep: one AUC table per score and baseline, a row per dataset x
method x t, the AUC of each curve and SRG for ori and wtd, how many samples wtd wins (the SRG's
wins, of the curves' samples) and wtd's wins / losses / ties over the row's curves. Runs without
curves are left out of these tables.

A winner is bold only where the 95 % interval of the per-sample paired difference wtd - ori
(``diff_auc``) excludes 0 in the curve's better direction (deletion lower, the others higher);
runs without paired keys compare the numbers. The seeds of one experiment share a row: mean ±
sd over the seeds, bold where every seed's interval agrees (as in the paper tables).
"""

from __future__ import annotations

from collections.abc import Sequence

from results.schema import (
    AXES,
    CURVE_KINDS,
    ResultKey,
    axis_values,
    paired_verdict,
    parse_results,
)
from results.tables import DASH, Cell, Table, latex, markdown
from sweeps.render import number_cell
from sweeps.runs import Run
from sweeps.tables import bolded, by_experiment, by_value, consensus, mean_sd

CONTRASTS = ("original", "weighted")
# insertion repeats deletion_lerf (the same images, read backwards): not counted twice
COUNTED = tuple(c for c in CURVE_KINDS if c != "insertion")
VERDICTS = ("win", "loss", "tie")


def curve_tables(runs: Sequence[Run]) -> list[Table]:
    """One :class:`Table` per (score, baseline) found in the runs' ``auc`` keys."""
    parsed = [(run, parse_results(run.results)) for run in runs]
    parsed = [(run, keys) for run, keys in parsed if any(k.quantity == "auc" for k in keys)]
    groups = by_experiment([run for run, _ in parsed])
    keys_of = {id(run): ks for run, ks in parsed}
    keys = [k for _, ks in parsed for k in ks]
    tables = []
    for score in axis_values(keys, "score", quantity="auc"):
        for baseline in axis_values(keys, "baseline", quantity="auc"):
            columns = [(AXES["curve"].title(c), AXES["contrast"].title(m))
                       for c in CURVE_KINDS for m in CONTRASTS]
            columns += [("SRG", "wins"), ("wtd", "W/L/T")]
            table = Table(f"Curve AUC of {AXES['score'].title(score)}, "
                          f"{AXES['baseline'].title(baseline)}",
                          ["data", "method", "t", "n"], columns,
                          name=f"curves_{score}_{baseline}",
                          heading=f"Faithfulness curves: AUC of {score}, {baseline}")
            totals = [0, 0, 0]
            for group in groups:
                ks = [k for run in group for k in keys_of[id(run)]]
                for method in axis_values(ks, "method", quantity="auc", baseline=baseline):
                    for t in axis_values(ks, "t", quantity="auc", method=method):
                        row, counts = _row(group, method, t, baseline, score)
                        if any(c.value is not None for c in row[4:-2]):
                            table.rows.append(row)
                            totals = [a + b for a, b in zip(totals, counts, strict=True)]
            if table.rows:
                table.note = (f"wtd vs ori: {totals[0]} wins, {totals[1]} losses, {totals[2]} "
                              f"ties of {sum(totals)} curve cells (Del, Del-LeRF, SRG). Bold: the "
                              "95 % interval of the per-sample difference excludes 0 (every "
                              "seed's, for several); no interval: the better number.")
                tables.append(table)
    return tables


def _row(runs: Sequence[Run], method: str, t: str, baseline: str, score: str
         ) -> tuple[list[Cell], tuple[int, int, int]]:
    """The cells of one experiment's (all seeds') row and its wtd win / loss / tie counts."""
    n = mean_sd([r.results.get(str(ResultKey("curve_count", method))) for r in runs])
    cells = [Cell(runs[0].dataset_label), Cell(AXES["method"].title(method)), Cell(t),
             Cell(DASH) if n.value is None else Cell(f"{n.value:.0f}", n.value)]
    counts = [0, 0, 0]
    for curve in CURVE_KINDS:
        keys = [ResultKey("auc", method, t, baseline, contrast=c, curve=curve, score=score)
                for c in CONTRASTS]
        ori, wtd = (mean_sd([r.results.get(str(k)) for r in runs]) for k in keys)
        mode = "neg" if curve == "deletion" else "pos"  # deletion: lower is better
        verdict = None
        if ori.present and wtd.present:
            # every seed's interval agreeing (else a tie); by the numbers without intervals
            verdict = consensus([paired_verdict(r.results, keys[1]) for r in runs]) or \
                by_value(ori, wtd, mode)
            if curve in COUNTED:
                counts[VERDICTS.index(verdict)] += 1
        cells += [number_cell(c) for c in bolded(ori, wtd, mode, verdict)]
    wins = mean_sd([r.results.get(str(ResultKey("auc_wins", method, t, baseline,
                                                   contrast="weighted", curve="srg",
                                                   score=score))) for r in runs])
    cells.append(Cell(DASH) if wins.value is None else Cell(f"{wins.value:.0f}", wins.value))
    cells.append(Cell("/".join(map(str, counts))))
    return cells, (counts[0], counts[1], counts[2])


def curve_tables_markdown(runs: Sequence[Run]) -> str:
    """The curve tables as markdown sections ('' when no run has curves)."""
    out = []
    for table in curve_tables(runs):
        out += [f"## {table.heading}", "",
                "Del: deletion, most relevant first (lower is better); Del-LeRF: least relevant "
                "first, Ins: insertion, SRG = AUC(Del-LeRF) - AUC(Del) (higher is better). "
                "wins: samples whose weighted map has the higher SRG, of n.", "",
                markdown(table), "", table.note, ""]
    return "\n".join(out)


def curve_tables_latex(runs: Sequence[Run]) -> str:
    """The curve tables in LaTeX ('' when no run has curves)."""
    return "\n".join(latex(t) for t in curve_tables(runs))
