"""The sanity checks' results in the one-run tables, the figures and the sweep report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from results.run_tables import run_tables
from results.sanity_figures import mprt_curves, mprt_curves_png, random_logit_grid_png
from results.schema import ResultKey
from sweeps.runs import Run
from sweeps.sanity import sanity_markdown

PNG = b"\x89PNG"


def _results() -> dict[str, float]:
    out = {}
    for m in ("gradcam", "linear_approx"):
        for i, c in enumerate(("original", "weighted", "finer")):
            out[str(ResultKey("random_logit_ssim", m, contrast=c))] = 0.9 - 0.2 * i
            out[str(ResultKey("random_logit_spearman", m, contrast=c))] = 0.8 - 0.2 * i
            if c != "original":
                out[str(ResultKey("random_logit_lower", m, contrast=c))] = 0.5 + 0.1 * i
            for step, layer in enumerate(("classifier.3", "classifier.0", "features.12"), 1):
                part = f"{step:02d}_{layer}"
                out[str(ResultKey("mprt_spearman", m, contrast=c, layer=part))] = 1 - step / 4
                out[str(ResultKey("mprt_ssim", m, contrast=c, layer=part))] = 1 - step / 8
    return out


def test_tables_curves_and_sweep_section() -> None:
    results = _results()
    tables = {t.name: t for t in run_tables(results)}
    rl = tables["random_logit"]
    assert sorted(r[0] for r in rl.texts()) == ["GC", "LA"]
    assert rl.texts()[0][1:4] == ["0.900", "0.700", "0.500"]  # SSIM ori, wtd, finer
    assert "wins" in " ".join(" ".join(p) for p in rl.columns)
    mprt = tables["gradcam"]  # the MPRT table split by method
    assert [r[0] for r in mprt.texts()] == ["01_classifier.3", "02_classifier.0",
                                            "03_features.12"]
    steps, curves = mprt_curves(results, "gradcam")
    assert steps[0] == "01_classifier.3" and curves["mprt_spearman"]["weighted"] == [
        0.75, 0.5, 0.25]
    run = Run(Path("r/results.json"), results, "exp", None, "CUB", "vgg16_bn", 1, "", "")
    text = sanity_markdown([run])
    assert "## Sanity checks" in text and "### CUB, vgg16_bn" in text and "0.700" in text
    assert sanity_markdown([Run(Path("x"), {}, "e", None, "C", "b", 1, "", "")]) == ""


@pytest.mark.slow
def test_sanity_figures_render() -> None:
    results = _results()
    assert mprt_curves_png(results, "gradcam")[:4] == PNG
    assert mprt_curves_png({}, "gradcam") is None
    g = torch.Generator().manual_seed(0)
    png = random_logit_grid_png(torch.randn(2, 3, 16, 16, generator=g),
                                {"original": torch.randn(2, 4, 4, generator=g)},
                                {"original": torch.randn(2, 4, 4, generator=g)},
                                torch.tensor([1, 2]), torch.tensor([3, 0]), (0.5,) * 3,
                                (0.25,) * 3)
    assert png[:4] == PNG
