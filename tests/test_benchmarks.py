"""The evaluation benchmark's accounting (not its timings: speed goals live in benchmarks/)."""

from __future__ import annotations

import math

import pytest

from benchmarks import evaluate_speed


def test_evaluate_speed_counts_and_splits_the_protocol() -> None:
    # two batches of one: the warm-up pass takes the first batch with its own labels
    result = evaluate_speed.run(quick=True, images=2, repeats=1, batch=1)
    # 2 methods x 48 perturbed images (3 baselines x pos/neg x 2 maskings x 2 contrasts x t1/t2)
    assert result["n_perturbed"] == 2 * 2 * 48
    assert result["n_images"] == 2 and result["repeats"] == 1 and result["batch"] == 1
    parts = result["explain_s"] + result["model_s"] + result["compose_s"]
    assert math.isclose(parts, result["protocol_s"], rel_tol=1e-9)
    assert 0 < result["model_s"] < result["protocol_s"]
    assert result["efficiency"] == pytest.approx(result["forward_s"] / result["protocol_s"])
    assert result["images_per_s"] == pytest.approx(2 / result["protocol_s"])


def test_evaluate_speed_rejects_a_partial_batch() -> None:
    with pytest.raises(ValueError, match="multiple of the batch size 8"):
        evaluate_speed.run(quick=True, images=12, repeats=1)


@pytest.mark.slow  # 3 s; the fast set keeps evaluate_speed's accounting of the same step
def test_whole_evaluation_accounts_every_part_and_its_floor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import whole_evaluation as we
    from callbacks.evaluation_step import PARTS, EvaluationStep

    calls = []
    update = EvaluationStep.update
    monkeypatch.setattr(EvaluationStep, "update",
                        lambda self, *a, **k: calls.append(1) or update(self, *a, **k))
    r = we.run(quick=True, images=1, batch=1, repeats=1)
    assert len(calls) == 2  # the callback's own step: the warm-up pass and the timed pass
    # masking: 2 methods x 48 perturbed images; gradient sign (n = 1, 2, 10, 4 contrasts):
    # 1 + 4 * (1 + 9) = 41 distinct points and 4 * 3 final points per image
    assert r["n_perturbed"] == 2 * 48
    assert r["n_gs_points"] == 41 and r["n_gs_final"] == 12
    parts = sum(r[f"{p}_s"] for p in PARTS)
    assert math.isclose(parts, r["total_s"], rel_tol=1e-9)
    floors = r["floor_masking_s"] + r["floor_gradient_sign_s"]
    assert r["efficiency"] == pytest.approx(floors / r["total_s"])
    assert r["efficiency_masking"] == pytest.approx(
        r["floor_masking_s"] / (r["explain_s"] + r["masking_s"]))
    assert r["efficiency_gradient_sign"] == pytest.approx(
        r["floor_gradient_sign_s"] / r["gradient_sign_s"])
    assert r["images_per_s"] == pytest.approx(1 / r["total_s"])
    assert r["peak_memory_gib"] > r["peak_memory_delta_gib"] >= 0
    hours = we.project_cub_hours(r, 0.5)
    every = r["explain_s"] + r["localisation_s"] + r["gradient_sign_s"]
    assert hours == pytest.approx(5794 * (every + 0.5 * r["masking_s"]) / 3600)


def test_memory_projection_uses_the_budget_s_chunks() -> None:
    import torch

    from benchmarks import whole_evaluation as we
    from lightning_modules.backbones import build_backbone
    from metrics import GradientSignPerturbation

    budget = 40 * 2**20
    p = we.project_memory(batch=8, backbone="tiny_vgg", size=32, budget=budget)
    gsp = GradientSignPerturbation((0.5,) * 3, (0.25,) * 3, memory_budget=budget)
    tiny = build_backbone("tiny_vgg", 200, None).eval()
    saved, widest = gsp.input_cost(tiny, torch.zeros(1, 3, 32, 32))
    per_row = saved + 3 * 3 * 32 * 32 * 4 + 2 * widest
    assert p["gs_estimate_per_row_mib"] == pytest.approx(per_row / 2**20)
    assert p["gs_step_chunk_rows"] == min(8 * 4 * 2, budget // per_row)
    assert p["explain_rows"] == 8 and p["perturbed_forward_rows"] == 5 * 48
    phases = ("explain", "perturbed_forward", "gs_clean_chunk", "gs_step_chunk")
    assert p["peak_gib"] == max(p[k] for k in phases) > 0


def test_peak_memory_sees_an_allocation() -> None:
    import torch

    from benchmarks.whole_evaluation import PeakMemory

    memory = PeakMemory(torch.device("cpu"))
    with memory.measure():
        block = torch.ones(64, 2**20)  # 256 MiB, touched
        del block
    assert 0.9 * 2**28 < memory.delta < 2**28 + 2**26


@pytest.mark.slow
def test_whole_evaluation_curves_part_and_its_floor() -> None:
    from benchmarks import whole_evaluation as we

    r = we.run(quick=True, images=1, batch=1, repeats=1, curves=True)
    # 2 methods x (1 blurred image, the shared last step, + 1 baseline x 2 t x 2 contrasts x
    # 2 run curves x 18 inner steps) images per image; step 0 reuses the clean logits
    assert r["n_curve_images"] == 2 * (1 + 8 * 18)
    assert r["efficiency_curves"] == pytest.approx(r["floor_curves_s"] / r["curves_s"])
    floors = r["floor_masking_s"] + r["floor_gradient_sign_s"] + r["floor_curves_s"]
    assert r["efficiency"] == pytest.approx(floors / r["total_s"])
    every = r["explain_s"] + r["localisation_s"] + r["gradient_sign_s"]
    assert we.project_cub_hours(r, 0.5) == pytest.approx(
        5794 * (every + 0.5 * (r["masking_s"] + r["curves_s"])) / 3600)
