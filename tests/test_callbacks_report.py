"""One run's tables and report.md over a flat results dict, heat-map grids, and the callback's
inference-mode guard and argument checks."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image
from rich.console import Console
from torch.utils.data import DataLoader, TensorDataset

from callbacks.contrastive_evaluation import ContrastiveEvaluation
from results.figures import CELL_INCH, DPI, denormalise, heatmap_grid_png, map_title
from results.files import atomic_write_text, write_results_json
from results.report import count_sentences, render_report, settings_lines
from results.run_tables import console_tables, spec_tables, table_spec
from results.tables import rich_tables, table_width

BASELINES = ("blur", "zeros", "mean")


def _table(results: dict[str, float], spec: str, name: str | None = None
           ) -> tuple[list[str], list[list[str]]]:
    """Header and cell texts of one run table (``name``: the split value, e.g. the masking)."""
    tables = spec_tables(table_spec(spec), results)
    table = next(t for t in tables if name is None or t.name == name)
    return table.header, table.texts()


def paper_table_rows(results: dict[str, float], masking: str) -> tuple[list[str], list[list[str]]]:
    return _table(results, "perturbation", masking)


def rich_paper_tables(results: dict[str, float], width: int = 120) -> list[object]:
    return [r for t in spec_tables(table_spec("perturbation"), results)
            for r in rich_tables(t, width)]


def _results() -> dict[str, float]:
    """A results dict whose every value encodes its position, so misplaced cells are caught."""
    out: dict[str, float] = {}
    for mi, method in enumerate(("gradcam", "linear_approx")):
        for ti, t in enumerate(("t1", "t2")):
            out[f"eval/clean_relprob/{method}/{t}"] = 0.7 - 0.4 * ti
            for bi, baseline in enumerate(BASELINES):
                for oi, mode in enumerate(("pos", "neg")):
                    for ki, masking in enumerate(("threshold", "equal")):
                        for ci, contrast in enumerate(("original", "weighted")):
                            rest = f"{t}/{baseline}/{mode}/{masking}/{contrast}"
                            out[f"eval/relprob/{method}/{rest}"] = (
                                mi * 0.5 + ti * 0.25 + bi * 0.1 + oi * 0.01
                                + ki * 0.002 + ci * 0.001
                            )
        out[f"eval/count/{method}"] = 13.0
        out[f"eval/differ_share/{method}/t1/original"] = 0.2
        out[f"eval/differ_share/{method}/t1/weighted"] = 0.4
        out[f"eval/shared_share/{method}/t1/original"] = 0.6
        out[f"eval/shared_share/{method}/t1/weighted"] = 0.3
        out[f"eval/pointing_differ/{method}/t1/original"] = 0.25
        out[f"eval/pointing_differ/{method}/t1/weighted"] = 0.5
        out[f"eval/pointing_shared/{method}/t1/original"] = 0.625
        out[f"eval/pointing_shared/{method}/t1/weighted"] = 0.125
        out[f"eval/count/{method}/t1"] = 13.0
        out[f"eval/count/{method}/t2"] = 13.0
    out["eval/delta_acc/gradient/weighted/n1"] = -0.125
    out["eval/delta_acc/gradient/original/n1"] = 0.25
    out["eval/clean_acc/gradient"] = 0.9
    out["eval/count/gradient"] = 50.0
    out["eval/num_samples"] = 50.0
    return out


def _wide_results() -> dict[str, float]:
    """Every gradient-sign quantity at 3 step counts and 4 contrasts, on top of ``_results``."""
    out = _results()
    for q in ("delta_acc", "delta_logit", "delta_prob"):
        for c in ("original", "mean", "max", "weighted"):
            for n in (1, 2, 10):
                out[f"eval/{q}/gradient/{c}/n{n}"] = -12.345
    return out


def test_paper_table_layout_matches_spec() -> None:
    """Rows method x t; columns r_t | per baseline Pos ori, wtd | Neg ori, wtd (docs/protocol.md
    §2.6)."""
    res = _results()
    header, rows = paper_table_rows(res, "equal")
    assert header[:3] == ["method", "t", "r_t"]
    assert header[3:7] == [
        "GaussBlur Pos ori", "GaussBlur Pos wtd", "GaussBlur Neg ori", "GaussBlur Neg wtd"
    ]
    assert header[-1] == "ChMean Neg wtd" and len(header) == 3 + 3 * 4
    # the paper's row order (LA, GC), whatever order the keys come in
    assert [r[:2] for r in rows] == [["LA", "t1"], ["LA", "t2"], ["GC", "t1"], ["GC", "t2"]]
    # LA t2, Zeros Neg wtd, equal masking: 0.5 + 0.25 + 0.1 + 0.01 + 0.002 + 0.001
    assert rows[1][header.index("Zeros Neg wtd")] == f"{0.863:.3f}"
    # GC t1, GaussBlur Pos ori, threshold masking: 0
    assert paper_table_rows(res, "threshold")[1][2][3] == "0.000"
    assert rows[1][2] == "0.300"


def test_paper_order_survives_sorted_keys() -> None:
    res = dict(sorted(_results().items()))  # as read back from results.json
    header, _ = paper_table_rows(res, "threshold")
    assert header[3:7] == [
        "GaussBlur Pos ori", "GaussBlur Pos wtd", "GaussBlur Neg ori", "GaussBlur Neg wtd"
    ]
    assert header[7] == "Zeros Pos ori" and header[11] == "ChMean Pos ori"


def test_missing_cell_is_a_dash_not_a_crash() -> None:
    res = _results()
    del res["eval/relprob/gradcam/t1/blur/pos/threshold/original"]
    header, rows = paper_table_rows(res, "threshold")
    assert rows[2][:2] == ["GC", "t1"] and rows[2][header.index("GaussBlur Pos ori")] == "—"


def test_gradient_sign_and_localisation_tables() -> None:
    res = _results()
    header, rows = _table(res, "gradient_sign")
    assert header == ["contrast", "delta_acc n1"]
    assert rows == [["original", "0.250"], ["weighted", "-0.125"]]
    res["eval/differ_share/linear_approx/t1/weighted"] = 0.45  # LA differs from GC here only
    header, rows = _table(res, "localisation")
    assert header == ["method", "t", "differ ori", "differ wtd", "shared ori", "shared wtd"]
    assert rows == [["LA", "t1", "0.200", "0.450", "0.600", "0.300"],
                    ["GC", "t1", "0.200", "0.400", "0.600", "0.300"]]
    header, rows = _table(res, "pointing")
    assert header == ["method", "t", "differ ori", "differ wtd", "shared ori", "shared wtd"]
    assert rows[1] == ["GC", "t1", "0.250", "0.500", "0.625", "0.125"]


def _render(table: object, width: int = 120) -> list[str]:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(table)
    return console.export_text().splitlines()


def test_console_tables_fit_120_columns_and_keep_every_cell() -> None:
    res = _wide_results()
    tables = console_tables(res)
    text = "\n".join(line for t in tables for line in _render(t))
    assert all(table_width(t) <= 120 for t in tables)
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "…" not in text and "Gaus." not in text  # no header or cell cut
    # the split tables of a masking hold every column of the paper table once, in order
    header, rows = paper_table_rows(res, "equal")
    split = [t for t in tables if "equal masking" in str(t.title)]
    cols = [(c.header.replace("\n", " "), list(c.cells)) for t in split for c in t.columns[3:]]
    assert cols == [(h, [r[i] for r in rows]) for i, h in enumerate(header) if i >= 3]
    assert all([c.header for c in t.columns[:3]] == ["method", "t", "r_t"] for t in split)
    for word in ("GaussBlur", "ChMean", "delta_logit", "part localisation",
                 "pointing game", "differ", "wtd", "gradient sign"):
        assert word in text, word
    paper = rich_paper_tables(res)
    assert len(paper) == 4  # 2 maskings x 2 tables: 3 baselines of 4 columns do not fit 120
    assert sorted(str(t.title)[-5:] for t in paper) == ["(1/2)", "(1/2)", "(2/2)", "(2/2)"]
    # a wide terminal gets one table per masking
    assert len(rich_paper_tables(res, width=200)) == 2


def test_narrow_console_splits_further() -> None:
    tables = console_tables(_wide_results(), width=80)
    assert all(table_width(t) <= 80 for t in tables)
    assert len(tables) > len(console_tables(_wide_results(), width=120))


def test_count_sentences() -> None:
    res = _results()
    sentences = count_sentences(res, 0.1)
    assert "50 test images were evaluated." in sentences
    assert ("13 of 50 test images have p_t2 > 0.1 and enter the perturbation tables."
            in sentences)
    assert any(s.startswith("13 of 50 test images have p_t2 > 0.1 and enter the part "
                            "localisation") for s in sentences)
    assert any("gradient-sign perturbation uses 50 of 50" in s for s in sentences)
    assert "13 of 50 test images are counted (no p_t2 threshold) and enter the perturbation " \
        "tables." in count_sentences(res, None)


def test_settings_drop_internal_keys() -> None:
    info = {"model": {"network": "TinyVGG", "lr": 0.01, "_instantiator": "x.y",
                      "_class_path": "a.B"}, "methods": ["gradcam", "linear_approx"]}
    lines = settings_lines(info)
    assert lines == ["- **model**:", "  - **network**: TinyVGG", "  - **lr**: 0.01",
                     "- **methods**: gradcam, linear_approx"]


def test_report_markdown_holds_every_table(tmp_path: Path) -> None:
    text = render_report(_results(), {"model": {"network": "TinyVGG", "_instantiator": "x"},
                                      "evaluation": {"threshold": 0.1}})
    assert "## Relative probability r_t, threshold masking" in text
    assert "## Relative probability r_t, equal masking" in text
    assert "Gradient-sign" in text and "## Part localisation" in text
    assert "## Pointing game" in text and "| GC | t1 | 0.250 | 0.500 | 0.625 | 0.125 |" in text
    assert "13 of 50 test images have p_t2 > 0.1 and enter the perturbation tables." in text
    assert "- **network**: TinyVGG" in text and "_instantiator" not in text
    assert "by construction" not in text


def test_report_explains_a_structurally_empty_shared_column() -> None:
    res = {k: (0.0 if "/shared_share/" in k or "/pointing_shared/" in k else v)
           for k, v in _results().items()}
    text = render_report(res)
    assert text.count("shared is 0 in every row by construction") == 2  # both tables
    assert "with_ground_truth='box'" in text


def test_atomic_writes_leave_no_temp_files(tmp_path: Path) -> None:
    write_results_json(tmp_path / "a" / "results.json", {"eval/b": 2.0, "eval/a": 1.0})
    atomic_write_text(tmp_path / "a" / "report.md", "x")
    atomic_write_text(tmp_path / "a" / "report.md", "y")
    assert sorted(os.listdir(tmp_path / "a")) == ["report.md", "results.json"]
    loaded = json.loads((tmp_path / "a" / "results.json").read_text())
    assert list(loaded) == ["eval/a", "eval/b"] and loaded["eval/b"] == 2.0
    assert (tmp_path / "a" / "report.md").read_text() == "y"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a" / "report.md").stat().st_mode & 0o777 == 0o666 & ~umask


def test_heatmap_grid_png_shape_and_denormalise() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    raw = torch.rand(2, 3, 32, 32)
    normed = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(denormalise(normed, mean, std), raw.permute(0, 2, 3, 1))
    maps = {"original": torch.randn(2, 2, 8, 8), "weighted": torch.randn(2, 2, 8, 8)}
    png = heatmap_grid_png(normed, maps, torch.tensor([[0, 1], [2, 3]]), mean, std, title="gc",
                           labels=torch.tensor([1, 3]), probs=torch.tensor([[0.6, 0.3]] * 2))
    img = Image.open(io.BytesIO(png))
    # 5 columns (image + 2 targets x 2 contrasts) and a colour bar, by 2 rows and a title
    assert img.size == (round((5 * CELL_INCH + 0.9) * DPI), round((2 * CELL_INCH + 0.5) * DPI))


def test_map_titles_name_class_probability_and_truth() -> None:
    assert map_title(0, "weighted", "Laysan Albatross", 0.7704, True) == \
        "t1 wtd: Laysan Albatross\np_t 0.770 (true)"
    assert map_title(1, "original", "Sooty Albatross", 0.2) == "t2 ori: Sooty Albatross\np_t 0.200"
    assert map_title(1, "max", "x") == "t2 max: x"


class _Classifier(pl.LightningModule):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.explain_layer = "features.12"

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.net(batch[0])


def test_inference_mode_is_a_clear_error(tiny_vgg: torch.nn.Module) -> None:
    data = DataLoader(TensorDataset(torch.randn(2, 3, 32, 32), torch.tensor([0, 1])), batch_size=2)
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[ContrastiveEvaluation()],
    )
    with pytest.raises(RuntimeError, match=r"Trainer\(inference_mode=False\)"):
        trainer.test(_Classifier(tiny_vgg), dataloaders=data, verbose=False)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="topk=3"):
        ContrastiveEvaluation(topk=3)
    with pytest.raises(ValueError, match="methods"):
        ContrastiveEvaluation(methods=())


def test_gradient_sign_columns_in_step_order_from_sorted_json() -> None:
    res = {f"eval/delta_prob/gradient/weighted/n{k}": float(k) for k in (10, 2, 1)}
    res = dict(sorted(res.items()))  # what results.json gives back: n1, n10, n2
    header, rows = _table(res, "gradient_sign")
    assert header == ["contrast", "delta_prob n1", "delta_prob n2", "delta_prob n10"]
    assert rows == [["weighted", "1.000", "2.000", "10.000"]]


def _paired(res: dict[str, float], key: str, lo: float, hi: float, n: int = 13) -> None:
    """The paired keys of ``key`` (a weighted cell) with the interval [lo, hi]."""
    diff = key.replace("eval/", "eval/diff_", 1)
    res.update({f"{diff}/mean": (lo + hi) / 2, f"{diff}/se": (hi - lo) / 3.92,
                f"{diff}/lo": lo, f"{diff}/hi": hi, f"{diff}/n": float(n)})


def test_bold_only_where_the_interval_excludes_zero() -> None:
    """Bold the significantly better of ori / wtd in the cell's direction; count the rest as
    ties; the note says so with the pairs per cell, in markdown, report.md, LaTeX and console."""
    res = _results()
    cell = "eval/relprob/gradcam/t1/{}/threshold/weighted"
    _paired(res, cell.format("blur/pos"), 0.01, 0.03)  # wtd higher, Pos: wtd wins
    _paired(res, cell.format("zeros/pos"), -0.03, -0.01)  # wtd lower, Pos: ori wins
    _paired(res, cell.format("zeros/neg"), -0.03, -0.01)  # wtd lower, Neg: wtd wins
    _paired(res, cell.format("mean/pos"), -0.001, 0.05, n=12)  # 0 inside: a tie
    table = next(t for t in spec_tables(table_spec("perturbation"), res) if t.name == "threshold")
    header, rows = table.header, table.texts()
    gc = rows[2]
    assert gc[:2] == ["GC", "t1"]
    bold = [header[i] for i, c in enumerate(gc) if c.startswith("**")]
    assert bold == ["GaussBlur Pos wtd", "Zeros Pos ori", "Zeros Neg wtd"]
    assert not any("**" in c for r in rows[:2] + rows[3:] for c in r)  # no interval, no bold
    assert table.note.startswith("wtd vs ori: 2 wins, 1 loss, 1 tie of 4 cells; "
                                 "n = 12-13 pairs per cell. Bold: ")
    text = render_report(res)
    assert table.note in text and "| GC | t1 | 0.700 | 0.000 | **0.001** |" in text
    from results.tables import latex
    assert r"\textbf{0.001}" in latex(table) and "2 wins, 1 loss, 1 tie" in latex(table)
    console = "\n".join(line for t in rich_tables(table, 200) for line in _render(t, 200))
    assert "2 wins, 1 loss, 1 tie" in console and "**" not in console
    # results written before paired keys existed: no bold, no note
    assert spec_tables(table_spec("perturbation"), _results())[0].note == ""


def test_gradient_sign_and_localisation_count_their_comparisons() -> None:
    res = _results()
    _paired(res, "eval/delta_acc/gradient/weighted/n1", -0.5, -0.1, n=50)  # lower: wtd loses
    _paired(res, "eval/shared_share/gradcam/t1/weighted", -0.4, -0.2)  # lower shared: wins
    _paired(res, "eval/differ_share/gradcam/t1/weighted", -0.1, 0.3)
    _, rows = _table(res, "gradient_sign")
    assert rows == [["original", "**0.250**"], ["weighted", "-0.125"]]
    table = spec_tables(table_spec("localisation"), res)[0]
    assert table.texts()[1] == ["GC", "t1", "0.200", "0.400", "0.600", "**0.300**"]
    assert table.note.startswith("wtd vs ori: 1 win, 0 losses, 1 tie of 2 cells; n = 13 pairs")
    note = spec_tables(table_spec("gradient_sign"), res)[0].note
    assert note.startswith("wtd vs ori: 0 wins, 1 loss, 0 ties of 1 cells; n = 50 pairs")
