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
