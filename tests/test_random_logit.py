"""Random-logit check: SSIM and Spearman against scipy's formulas, the seeded class draw, the
extra target riding in the same backward, and (slow) 2 gloo processes equal to 1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr
from torch import Tensor, nn

from callbacks.evaluation_step import EvaluationStep
from explainers import explain
from metrics.functional.similarity import figure_normalise, spearman, ssim
from metrics.random_logit import draw_other
from tests.background import completed
from tests.conftest import DDP


def _ssim_reference(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False), written out with scipy's Gaussian filter."""
    def filt(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, sigma=1.5, truncate=3.5)

    ux, uy = filt(a), filt(b)
    vx, vy, vxy = filt(a * a) - ux * ux, filt(b * b) - uy * uy, filt(a * b) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())  # skimage crops (win_size - 1) // 2


def test_ssim_and_spearman_against_scipy() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 24, 20, generator=g, dtype=torch.float64)
    b = 0.5 * a + torch.randn(3, 24, 20, generator=g, dtype=torch.float64)
    b[2] = torch.round(b[2])  # ties
    got = ssim(a, b, data_range=2.0)
    for i in range(3):
        assert float(got[i]) == pytest.approx(_ssim_reference(a[i].numpy(), b[i].numpy(), 2.0),
                                              abs=1e-9)
    torch.testing.assert_close(ssim(a, a), torch.ones(3, dtype=torch.float64))
    rho = spearman(a, b)
    for i in range(3):
        ref = spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert float(rho[i]) == pytest.approx(ref, abs=1e-9)
    norm = figure_normalise(torch.randn(2, 3, 4, 4, generator=g), (16, 16))
    assert norm.shape == (2, 16, 16) and torch.allclose(norm.abs().amax(dim=(1, 2)),
                                                        torch.ones(2))


def test_the_random_class_is_seeded_by_the_dataset_index() -> None:
    t1 = torch.tensor([3, 0, 9, 3])
    s = draw_other([10, 11, 12, 13], t1, 10, seed=0)
    assert bool((s != t1).all()) and bool(((s >= 0) & (s < 10)).all())
    # the same index draws the same class whatever batch it is in
    assert int(draw_other([12], t1[2:3], 10)[0]) == int(s[2])
    many = draw_other(range(2000), torch.zeros(2000, dtype=torch.long), 10)
    counts = torch.bincount(many, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 150  # uniform over the other 9


def test_the_step_measures_the_map_of_a_random_class(tiny_vgg: nn.Module,
                                                     images: Tensor) -> None:
    kw = dict(methods=("gradcam",), layer="features.8", topk=2,
              contrasts=("original", "weighted", "finer"), baselines=("zeros",), modes=("pos",),
              maskings=("threshold",), threshold=None, max_batch=64, gradient_sign=False,
              steps=(1,), eps=1e-3, memory_budget=None, localization=False, mean=(0.0,) * 3,
              std=(1.0,) * 3)
    labels = torch.zeros(4, dtype=torch.long)
    plain = EvaluationStep(**kw)
    plain.update(tiny_vgg, images, labels)
    step = EvaluationStep(**kw, random_logit=True)
    out = step.update(tiny_vgg, images, labels, indices=[5, 6, 7, 8])
    res = out["gradcam"]
    assert res.targets.shape == (4, 2)
    values, before = step.compute(), plain.compute()
    assert {k: v for k, v in values.items() if "random_logit" not in k} == before
    s = draw_other([5, 6, 7, 8], res.targets[:, 0], 10)
    ref = explain(tiny_vgg, images, "gradcam", "features.8", targets=s,
                  contrasts=("original", "weighted", "finer"))
    for i, c in enumerate(("original", "weighted", "finer")):
        a = figure_normalise(res.maps[c][:, 0], (32, 32))
        b = figure_normalise(ref.maps[c][:, 0], (32, 32))
        assert values[f"eval/random_logit_ssim/gradcam/{c}"] == pytest.approx(
            float(ssim(a, b).mean()), abs=1e-5)
        assert values[f"eval/random_logit_spearman/gradcam/{c}"] == pytest.approx(
            float(spearman(a, b).mean()), abs=1e-5)
        if i:
            share = float((ssim(a, b) < ssim(*(figure_normalise(m.maps["original"][:, 0],
                                                                (32, 32)) for m in (res, ref))))
                          .double().mean())
            assert values[f"eval/random_logit_lower/gradcam/{c}"] == pytest.approx(share)


@pytest.mark.slow
def test_sanity_checks_two_processes_equal_one(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from tests.test_evaluate import _evaluate_cli

    extra = ["--evaluation.random_logit", "true", "--evaluation.gradient_sign", "false",
             "--evaluation.contrasts", "[original, weighted, finer]", "--evaluation.mprt", "true",
             "--evaluation.mprt_samples", "3"]
    one = _evaluate_cli(tmp_path / "one", tiny_checkpoint, *extra)
    completed(one, "one process")
    two = _evaluate_cli(tmp_path / "two", tiny_checkpoint, *extra, *DDP)
    completed(two, "two processes")
    r1, r2 = ({**json.loads(p.read_text())} for p in (
        next((tmp_path / d).rglob("results.json")) for d in ("one", "two")))
    assert set(r1) == set(r2)
    keys = [k for k in r1 if "random_logit" in k and not k.startswith("eval/diff_")]
    assert len(keys) == 2 * (3 + 3 + 2)  # GC, LA x (ssim, spearman) x 3 contrasts + 2 wins
    # paired: GC, LA x (ssim, spearman) x (weighted, finer) x 5 stats, equal on 2 ranks too
    assert len([k for k in r1 if k.startswith("eval/diff_random_logit_")]) == 2 * 2 * 2 * 5
    for key in r1:
        # MPRT's samples are explained in other batch compositions on 2 ranks: float32 sums in
        # other orders move near-tied ranks of a randomised network's map (seen: 3e-6)
        tol = 1e-4 if key.startswith("eval/mprt_") else 1e-6
        assert r2[key] == pytest.approx(r1[key], abs=tol), key
    # MPRT: GC, LA x 3 contrasts x 10 cascade steps (tiny_vgg) x (Spearman, SSIM); the samples
    # with index < 3 are on both ranks under DDP, and the sums equal one process's
    assert len([k for k in r1 if k.startswith("eval/mprt_")]) == 2 * 3 * 10 * 2
    report = next((tmp_path / "one").rglob("report.md")).read_text()
    assert "Random-logit" in report and "finer" in report and "(MPRT)" in report
    figures = next((tmp_path / "one").rglob("figures"))
    for name in ("randomlogit_gradcam", "mprt_gradcam", "mprt_linear_approx"):
        assert (figures / f"{name}.png").is_file(), name


def test_paired_similarity_by_hand_and_merged_halves() -> None:
    import math
    import statistics

    from metrics.random_logit import RandomLogit
    from results.run_tables import spec_tables, table_spec

    g = torch.Generator().manual_seed(3)
    contrasts = ("original", "weighted", "mean")
    maps_t = {c: torch.randn(5, 6, 6, generator=g) for c in contrasts}
    # the original's map of s is nearly its map of t1: the other contrasts are far less similar
    maps_s = {c: torch.randn(5, 6, 6, generator=g) for c in contrasts}
    maps_s["original"] = maps_t["original"] + 0.05 * torch.randn(5, 6, 6, generator=g)
    whole, a, b = (RandomLogit("gradcam", contrasts) for _ in range(3))
    whole.update(maps_t, maps_s, (12, 12))
    a.update({c: m[:3] for c, m in maps_t.items()}, {c: m[:3] for c, m in maps_s.items()},
             (12, 12))
    b.update({c: m[3:] for c, m in maps_t.items()}, {c: m[3:] for c, m in maps_s.items()},
             (12, 12))
    a.merge_state(b)  # what DDP's sum reduction gives
    one, two = whole.compute(), a.compute()
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(one[k], two[k], rtol=1e-6, atol=1e-6)
    per = {c: (ssim(figure_normalise(maps_t[c], (12, 12)), figure_normalise(maps_s[c], (12, 12))),
               spearman(figure_normalise(maps_t[c], (12, 12)),
                        figure_normalise(maps_s[c], (12, 12)))) for c in contrasts}
    for c in ("weighted", "mean"):
        for i, q in enumerate(("ssim", "spearman")):
            d = [float(w) - float(o) for w, o in zip(per[c][i], per["original"][i], strict=True)]
            base = f"eval/diff_random_logit_{q}/gradcam/{c}"
            assert float(one[f"{base}/mean"]) == pytest.approx(statistics.mean(d), abs=1e-6)
            assert float(one[f"{base}/se"]) == pytest.approx(statistics.stdev(d) / math.sqrt(5),
                                                             abs=1e-6)
            assert float(one[f"{base}/n"]) == 5 and float(one[f"{base}/hi"]) < 0
    assert not any("diff_random_logit" in k and "/original/" in k for k in one)
    # lower is better: the contrasts win both similarities, the random-logit table says so
    table = spec_tables(table_spec("random_logit"), {k: float(v) for k, v in one.items()})[0]
    assert "wtd vs ori: 2 wins, 0 losses, 0 ties of 2 cells; n = 5 pairs" in table.note
    assert "mean vs ori: 2 wins" in table.note
