"""The evaluation benchmark's accounting (not its timings: speed goals live in benchmarks/)."""

from __future__ import annotations

import math

import pytest

from benchmarks import evaluate_speed


def test_evaluate_speed_counts_and_splits_the_protocol() -> None:
    result = evaluate_speed.run(quick=True, images=8, repeats=1)
    # 2 methods x 48 perturbed images (3 baselines x pos/neg x 2 maskings x 2 contrasts x t1/t2)
    assert result["n_perturbed"] == 8 * 2 * 48
    assert result["n_images"] == 8 and result["repeats"] == 1
    parts = result["explain_s"] + result["model_s"] + result["compose_s"]
    assert math.isclose(parts, result["protocol_s"], rel_tol=1e-9)
    assert 0 < result["model_s"] < result["protocol_s"]
    assert result["efficiency"] == pytest.approx(result["forward_s"] / result["protocol_s"])
    assert result["images_per_s"] == pytest.approx(8 / result["protocol_s"])


def test_evaluate_speed_rejects_a_partial_batch() -> None:
    with pytest.raises(ValueError, match="multiple of the batch size 8"):
        evaluate_speed.run(quick=True, images=12, repeats=1)
