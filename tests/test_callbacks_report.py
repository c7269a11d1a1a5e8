"""Report writers over a flat results dict, heat-map grids, and the inference-mode guard."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from callbacks.contrastive_evaluation import ContrastiveEvaluation, prefix_keys
from callbacks.figures import denormalise, heatmap_grid_png
from callbacks.report import (
    atomic_write_text,
    gradient_sign_rows,
    localization_rows,
    paper_table_rows,
    render_report,
    write_results_json,
)

BASELINES = ("blur", "zeros", "mean")


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
    out["eval/delta_acc/gradient/weighted/n1"] = -0.125
    out["eval/delta_acc/gradient/original/n1"] = 0.25
    out["eval/clean_acc/gradient"] = 0.9
    return out


def test_paper_table_layout_matches_spec() -> None:
    """Rows method x t; columns p_t | per baseline Pos ori, wtd | Neg ori, wtd (SPEC §2.6)."""
    res = _results()
    header, rows = paper_table_rows(res, "equal")
    assert header[:3] == ["method", "t", "p_t"]
    assert header[3:7] == [
        "GaussBlur Pos ori", "GaussBlur Pos wtd", "GaussBlur Neg ori", "GaussBlur Neg wtd"
    ]
    assert header[-1] == "ChMean Neg wtd" and len(header) == 3 + 3 * 4
    assert [r[:2] for r in rows] == [["GC", "t1"], ["GC", "t2"], ["LA", "t1"], ["LA", "t2"]]
    # LA t2, Zeros Neg wtd, equal masking: 0.5 + 0.25 + 0.1 + 0.01 + 0.002 + 0.001
    assert rows[3][header.index("Zeros Neg wtd")] == f"{0.863:.3f}"
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
    assert rows[0][header.index("GaussBlur Pos ori")] == "—"


def test_gradient_sign_and_localisation_tables() -> None:
    res = _results()
    header, rows = gradient_sign_rows(res)
    assert header == ["contrast", "delta_acc/n1"]
    assert dict((r[0], r[1]) for r in rows) == {"weighted": "-0.125", "original": "0.250"}
    header, rows = localization_rows(res)
    assert header == ["method", "t", "differ original", "differ weighted", "shared original",
                      "shared weighted"]
    assert rows[0] == ["GC", "t1", "0.200", "0.400", "0.600", "0.300"]


def test_report_markdown_holds_every_table(tmp_path: Path) -> None:
    text = render_report(_results(), {"model": "TinyVGG"})
    assert "## Relative probability r_t, threshold masking" in text
    assert "## Relative probability r_t, equal masking" in text
    assert "Gradient-sign" in text and "localisation" in text
    assert "**eval/count/gradcam**: 13" in text and "`TinyVGG`" in text


def test_atomic_writes_leave_no_temp_files(tmp_path: Path) -> None:
    write_results_json(tmp_path / "a" / "results.json", {"eval/b": 2.0, "eval/a": 1.0})
    atomic_write_text(tmp_path / "a" / "report.md", "x")
    atomic_write_text(tmp_path / "a" / "report.md", "y")
    assert sorted(os.listdir(tmp_path / "a")) == ["report.md", "results.json"]
    loaded = json.loads((tmp_path / "a" / "results.json").read_text())
    assert list(loaded) == ["eval/a", "eval/b"] and loaded["eval/b"] == 2.0
    assert (tmp_path / "a" / "report.md").read_text() == "y"


def test_prefix_keys_puts_method_after_quantity() -> None:
    v = torch.tensor(1.0)
    out = prefix_keys({"relprob/t1/blur/pos/equal/weighted": v, "count": v, "count/t2": v}, "gc")
    assert sorted(out) == ["eval/count/gc", "eval/count/gc/t2",
                           "eval/relprob/gc/t1/blur/pos/equal/weighted"]


def test_heatmap_grid_png_shape_and_denormalise() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    raw = torch.rand(2, 3, 32, 32)
    normed = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(denormalise(normed, mean, std), raw.permute(0, 2, 3, 1))
    maps = {"original": torch.randn(2, 2, 8, 8), "weighted": torch.randn(2, 2, 8, 8)}
    png = heatmap_grid_png(normed, maps, torch.tensor([[0, 1], [2, 3]]), mean, std, title="gc")
    img = Image.open(io.BytesIO(png))
    # 5 columns (image + 2 targets x 2 contrasts) by 2 rows of 1.8 inch cells at 80 dpi
    assert img.size == (round(5 * 1.8 * 80), round(2 * 1.8 * 80))


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
    header, rows = gradient_sign_rows(res)
    assert header == ["contrast", "delta_prob/n1", "delta_prob/n2", "delta_prob/n10"]
    assert rows == [["weighted", "1.000", "2.000", "10.000"]]
