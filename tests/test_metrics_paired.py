"""Paired differences: the statistics on hand-computed inputs, the n < 2 rule, state merging
(what DDP's sum reduction does) and the result keys."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics import Metric

from metrics.functional.paired import Z95, paired_stats, paired_sums
from metrics.paired import add_paired_state, paired_results, update_paired
from results.schema import (
    PAIRED_STATS,
    ResultKey,
    higher_is_better,
    paired_key,
    paired_verdict,
    verdict,
)


def test_statistics_by_hand() -> None:
    ori = torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=torch.float64)
    wtd = ori + torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)  # d = 1, 2, 3, 4
    mean, se, lo, hi, n = paired_stats(paired_sums(ori, wtd)).tolist()
    # sample variance (denominator n - 1) of 1..4 is 5/3; se = sqrt(5/3 / 4)
    assert (mean, n) == (2.5, 4.0)
    assert se == pytest.approx(math.sqrt(5 / 12), rel=1e-12)
    assert (lo, hi) == pytest.approx((2.5 - Z95 * se, 2.5 + Z95 * se), rel=1e-12)
    assert pytest.approx(1.959963984540054) == Z95


def test_too_few_pairs_and_equal_differences() -> None:
    one = paired_stats(paired_sums(torch.zeros(1, dtype=torch.float64),
                                   torch.ones(1, dtype=torch.float64)))
    assert one[0] == 1.0 and one[4] == 1.0 and all(math.isnan(v) for v in one[1:4].tolist())
    none = paired_stats(torch.zeros(3, dtype=torch.float64))
    assert math.isnan(none[0]) and none[4] == 0.0
    # every d equal: se 0 up to the one-pass formula's float64 cancellation (never a NaN
    # from a variance rounded below 0)
    same = paired_stats(paired_sums(torch.zeros(5, dtype=torch.float64),
                                    torch.full((5,), 0.1, dtype=torch.float64)))
    assert 0.0 <= same[1] < 1e-8 and float(same[2]) == pytest.approx(0.1)
    zero = paired_stats(paired_sums(torch.ones(5, dtype=torch.float64),
                                    torch.ones(5, dtype=torch.float64)))
    assert zero[:4].tolist() == [0.0, 0.0, 0.0, 0.0] and verdict(0.0, 0.0) == "tie"


def test_valid_leaves_samples_out() -> None:
    ori = torch.tensor([[0.0, 5.0], [1.0, 5.0], [9.0, 0.0]], dtype=torch.float64)  # [B=3, 2]
    wtd = torch.tensor([[1.0, 6.0], [3.0, 9.0], [0.0, 0.0]], dtype=torch.float64)
    valid = torch.tensor([[True, True], [True, True], [False, True]])
    sums = paired_sums(ori, wtd, valid)
    assert sums.tolist() == [[3.0, 5.0], [5.0, 17.0], [2.0, 3.0]]


def test_verdict() -> None:
    assert verdict(0.1, 0.3) == "win" and verdict(-0.3, -0.1) == "loss"
    assert verdict(-0.3, -0.1, higher_is_better=False) == "win"
    assert verdict(-0.1, 0.1) == "tie" and verdict(0.0, 0.2) == "tie"  # 0 inside: a tie
    assert verdict(None, None) is None and verdict(math.nan, math.nan) is None


class _Scores(Metric):
    """A toy metric comparing 3 contrasts per sample (original first), 2 cells each."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        add_paired_state(self, "differ_share", (2, 3))

    def update(self, values: torch.Tensor) -> None:  # [B, 2 ranks, 3 contrasts]
        update_paired(self, "differ_share", values, 2, 0)

    def compute(self) -> dict[str, torch.Tensor]:
        contrasts = ("original", "weighted", "mean")

        def key_of(idx: tuple[int, ...]) -> ResultKey | None:
            r, c = idx
            return None if c == 0 else ResultKey("differ_share", "gradcam", ("t1", "t2")[r],
                                                 contrast=contrasts[c])
        return paired_results(self, "differ_share", key_of)


def test_state_helper_merges_like_ddp() -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.rand(7, 2, 3, generator=g)
    whole, a, b = _Scores(), _Scores(), _Scores()
    whole.update(values)
    a.update(values[:3])
    b.update(values[3:])
    a.merge_state(b)  # what the sum reduction over two ranks gives
    one, two = whole.compute(), a.compute()
    assert len(one) == 2 * 2 * len(PAIRED_STATS)  # 2 ranks x 2 compared contrasts x 5 stats
    for key in one:
        assert float(two[key]) == pytest.approx(float(one[key]), abs=1e-6), key
    d = (values[:, 1, 2] - values[:, 1, 0]).double()
    assert float(one["eval/diff_differ_share/gradcam/t2/mean/mean"]) == pytest.approx(
        float(d.mean()), abs=1e-6)
    assert float(one["eval/diff_differ_share/gradcam/t2/mean/se"]) == pytest.approx(
        float(d.std() / math.sqrt(7)), abs=1e-6)


def test_paired_keys_parse_and_point_the_right_way() -> None:
    key = ResultKey("relprob", "gradcam", "t1", "blur", "neg", "threshold", "weighted")
    diff = paired_key(key, "se")
    assert str(diff) == "eval/diff_relprob/gradcam/t1/blur/neg/threshold/weighted/se"
    assert ResultKey.parse(str(diff)) == diff
    assert higher_is_better(diff) is False and higher_is_better(key.with_(mode="pos")) is True
    grad = paired_key(ResultKey("delta_prob", "gradient", contrast="max", steps=10), "lo")
    assert str(grad) == "eval/diff_delta_prob/gradient/max/n10/lo"
    assert ResultKey.parse(str(grad)) == grad and higher_is_better(grad) is True
    shared = paired_key(ResultKey("shared_share", "gradcam", "t2", contrast="weighted"), "n")
    assert higher_is_better(shared) is False
    with pytest.raises(ValueError, match="stat 'sd'"):
        ResultKey.parse("eval/diff_relprob/gradcam/t1/blur/neg/threshold/weighted/sd")


def test_paired_verdict_reads_the_interval_in_the_modes_direction() -> None:
    key = ResultKey("relprob", "gradcam", "t1", "blur", "neg", "threshold", "weighted")
    results = {str(paired_key(key, "lo")): -0.2, str(paired_key(key, "hi")): -0.1}
    assert paired_verdict(results, key) == "win"  # Neg: lower is better
    assert paired_verdict(results, key.with_(mode="pos")) is None  # no such keys
    assert paired_verdict(results, key.with_(contrast="original")) is None
    assert paired_verdict({}, ResultKey("clean_relprob", "gradcam", "t1")) is None
