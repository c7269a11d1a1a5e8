"""The sweep's curve AUC tables: one per score and baseline, a row per run x method x t."""

from __future__ import annotations

from pathlib import Path

from sweeps.curve_tables import curve_tables, curve_tables_markdown
from sweeps.runs import Run


def _run(label: str, results: dict[str, float]) -> Run:
    return Run(Path(f"{label}/results.json"), results, label, None, label, "tiny_vgg", 1,
               "2026-01-01T00:00:00", "run.json")


def test_curve_tables_rows_cells_and_wins() -> None:
    base = "eval/auc/gradcam/{t}/zeros/{c}/{k}/prob"
    results = {"eval/curve_count/gradcam": 7.0,
               "eval/auc_wins/gradcam/t1/zeros/weighted/srg/prob": 5.0}
    for t in ("t1", "t2"):
        for i, c in enumerate(("original", "weighted")):
            for j, k in enumerate(("deletion", "deletion_lerf", "insertion", "srg")):
                results[base.format(t=t, c=c, k=k)] = 0.1 * j + 0.01 * i
    runs = [_run("cub", results), _run("no_curves", {"eval/num_samples": 3.0})]
    (table,) = curve_tables(runs)
    assert table.name == "curves_prob_zeros"
    assert [r[0].text for r in table.rows] == ["cub", "cub"]  # t1, t2; the other run left out
    t1 = table.rows[0]
    assert [c.text for c in t1[:4]] == ["cub", "GC", "t1", "7"]
    assert [c.text for c in t1[4:12]] == ["0.000", "0.010", "0.100", "0.110", "0.200", "0.210",
                                         "0.300", "0.310"]
    assert t1[12].text == "5" and table.rows[1][12].text == "—"
    assert "## Faithfulness curves: AUC of prob, zeros" in curve_tables_markdown(runs)
    assert curve_tables_markdown(runs[1:]) == ""


def _paired(results: dict[str, float], t: str, curve: str, mean: float, half: float) -> None:
    """The paired keys of wtd - ori of one cell: mean, its interval mean -/+ half."""
    key = f"eval/diff_auc/gradcam/{t}/zeros/weighted/{curve}/prob"
    for stat, value in (("mean", mean), ("se", half / 1.96), ("lo", mean - half),
                        ("hi", mean + half), ("n", 7.0)):
        results[f"{key}/{stat}"] = value


def _seeded(seed: int, wtd_deletion: float, lerf_interval: float) -> Run:
    results = {"eval/curve_count/gradcam": 7.0 + seed}
    for c, shift in (("original", 0.0), ("weighted", 1.0)):
        for k, v in (("deletion", 0.4), ("deletion_lerf", 0.6), ("insertion", 0.6),
                     ("srg", 0.2)):
            value = wtd_deletion if (c, k) == ("weighted", "deletion") else v + 0.01 * shift
            results[f"eval/auc/gradcam/t1/zeros/{c}/{k}/prob"] = value
    # deletion: wtd lower, interval below 0 (a win); LeRF / insertion: +0.01 within the given
    # half-width; SRG: +0.01 with a tight interval (a win)
    _paired(results, "t1", "deletion", wtd_deletion - 0.4, 0.01)
    for k in ("deletion_lerf", "insertion"):
        _paired(results, "t1", k, 0.01, lerf_interval)
    _paired(results, "t1", "srg", 0.01, 0.001)
    run = _run("synthetic", results)
    run.seed = seed
    return run


def test_curve_tables_bold_by_paired_interval_and_fold_seeds() -> None:
    # one seed: Del a significant win, Del-LeRF and Ins ties (interval holds 0), SRG a win
    (table,) = curve_tables([_seeded(0, 0.3, 0.05)])
    row = table.rows[0]
    bold = [c.bold for c in row[4:12]]
    assert bold == [False, True, False, False, False, False, False, True]
    assert row[13].text == "2/0/1"  # Del, Del-LeRF, SRG: insertion repeats Del-LeRF
    assert "2 wins, 0 losses, 1 ties of 3 curve cells" in table.note
    # the same numbers without paired keys are compared by value: LeRF's +0.01 wins too
    plain = _seeded(0, 0.3, 0.05)
    plain.results = {k: v for k, v in plain.results.items() if "/diff_auc/" not in k}
    (by_value,) = curve_tables([plain])
    assert by_value.rows[0][13].text == "3/0/0"
    # three seeds in one row: mean ± sd, a win only where every seed's interval says so
    seeds = [_seeded(0, 0.3, 0.005), _seeded(1, 0.2, 0.005), _seeded(2, 0.25, 0.05)]
    (table,) = curve_tables(seeds)
    (row,) = table.rows
    assert row[3].text == "8"  # mean of 7, 8, 9 samples
    assert row[5].text == "0.250 ± 0.050" and row[5].bold
    assert not row[6].bold and not row[7].bold  # LeRF: seed 2's interval holds 0 -> a tie
    assert row[13].text == "2/0/1"
    md = curve_tables_markdown(seeds)
    assert "**0.250 ± 0.050**" in md and "2 wins, 0 losses, 1 ties" in md
