"""Faithfulness curves on constructed cases with numbers worked out by hand: a linear "model"
whose logit 0 is the sum of the image, step counts, patch ranking, ties, ROAD rows, chunking."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from errors import ConfigError
from metrics.functional.curves import (
    all_curves,
    curve_aucs,
    curve_fractions,
    patch_ranks,
    removed_units,
    run_curves,
    step_counts,
    unit_mask_to_pixels,
)
from metrics.functional.perturbation import pixel_ranks


class SumNet(nn.Module):
    """logits = (sum of the image, 0, -1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s), -torch.ones_like(s)], dim=1)


def _run(x, maps, baselines=("zeros",), steps=5, patch=1, max_batch=64, bases=None, **kw):
    ranks = patch_ranks(maps, patch)
    if bases is None:
        bases = torch.zeros(1, *x.shape)
    targets = torch.tensor([[0, 1]]).expand(x.shape[0], 2)
    return run_curves(SumNet(), x, ranks, targets, bases, baselines, steps, patch, max_batch,
                      clean_logits=SumNet()(x), **kw)


def test_deletion_insertion_numbers_by_hand() -> None:
    x = torch.tensor([[4.0, 3.0], [2.0, 1.0]]).view(1, 1, 2, 2)
    maps = x.view(1, 1, 1, 2, 2).expand(1, 2, 1, 2, 2)  # t1 and t2 maps = the image itself
    run = _run(x, maps)  # [1, 1, 2, 1, 2, 5, 3]
    curves = all_curves(run)[0, 0, 0, 0]  # t1's map: [3 curves, 5 steps, 3 scores]
    y = curves[..., 0]
    torch.testing.assert_close(y, torch.tensor([[10.0, 6, 3, 1, 0], [10, 9, 7, 4, 0],
                                                [0, 4, 7, 9, 10]]))
    # p_t and r_t of t1 = class 0 (t2 = class 1 with logit 0)
    p = torch.exp(y) / (torch.exp(y) + 1 + math.exp(-1))
    torch.testing.assert_close(curves[..., 1], p)
    torch.testing.assert_close(curves[..., 2], torch.sigmoid(y))
    auc = curve_aucs(all_curves(run), units=4)[0, 0, 0, 0]  # [3 curves, 3 scores]
    torch.testing.assert_close(auc[:, 0], torch.tensor([3.75, 6.25, 6.25]))
    assert float(auc[1, 0] - auc[0, 0]) == 2.5  # SRG of the logit
    # t2's row scores class 1: logit 0 throughout
    assert torch.equal(all_curves(run)[0, 0, 1, 0, :, :, 0], torch.zeros(3, 5))


def test_step_counts_fractions_and_errors() -> None:
    assert step_counts(10, 4).tolist() == [0, 3, 6, 10]
    fr = curve_fractions(10, 4)
    assert fr["deletion"].tolist() == [0.0, 0.3, 0.6, 1.0]
    assert fr["insertion"].tolist() == [0.0, 0.4, 0.7, 1.0]
    with pytest.raises(ConfigError, match="steps"):
        step_counts(10, 1)
    with pytest.raises(ConfigError, match="divide"):
        patch_ranks(torch.zeros(1, 6, 6), 4)


def test_ties_and_patches_rank_as_equal_masking() -> None:
    ranks = pixel_ranks(torch.zeros(1, 2, 2))  # all tied: rank = pixel index
    k, lerf = torch.tensor([1, 1]), torch.tensor([False, True])
    got = removed_units(ranks.expand(2, 4), k, lerf)
    assert got.tolist() == [[False, False, False, True], [True, False, False, False]]
    # 4x4 map, 2x2 patches with means 4, 1 / 3, 2: most relevant first removes the 4 and 3 squares
    m = torch.tensor([[4.0, 1], [3, 2]]).repeat_interleave(2, 0).repeat_interleave(2, 1)
    m = m + torch.tensor([[0.5, -0.5], [-0.5, 0.5]]).repeat(2, 2)  # same means, uneven pixels
    r = patch_ranks(m[None], 2)
    assert r.tolist() == [[3, 0, 2, 1]]
    pix = unit_mask_to_pixels(removed_units(r, torch.tensor([2]), torch.tensor([False])),
                              (4, 4), 2)
    want = torch.tensor([[1, 0], [1, 0]]).bool().repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert torch.equal(pix[0], want)


def test_patch_curve_and_chunking_agree() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 4, 4, generator=g)
    maps = torch.randn(3, 2, 2, 4, 4, generator=g)
    bases = torch.stack([torch.zeros_like(x), x.mean((-2, -1), keepdim=True).expand_as(x)])
    whole = _run(x, maps, ("zeros", "mean"), steps=3, patch=2, bases=bases)
    small = _run(x, maps, ("zeros", "mean"), steps=3, patch=2, bases=bases, max_batch=5)
    torch.testing.assert_close(whole, small)
    # first step: the clean image for every map; last: the whole baseline image
    y = whole[..., 0]
    clean = x.flatten(1).sum(1)
    torch.testing.assert_close(y[:, 0, 0, :, 0, 0], clean[:, None].expand(3, 2))
    torch.testing.assert_close(y[:, 0, 0, :, :, -1], torch.zeros(3, 2, 2))
    torch.testing.assert_close(y[:, 1, 0, :, 0, -1], clean[:, None].expand(3, 2))


def test_road_rows_impute_a_constant_image_by_the_constant() -> None:
    x = torch.full((1, 3, 6, 6), 0.5)
    maps = torch.randn(1, 2, 1, 6, 6)
    run = _run(x, maps, ("road",), steps=4, bases=None)
    y = run[0, 0, 0, 0, :, :, 0]  # t1 (class 0, the sum): [2 curves, 4 steps]
    want = torch.tensor([54.0, 54.0, 54.0, 0.0])  # all removed: nothing to interpolate from
    torch.testing.assert_close(y, want.expand(2, 4), atol=1e-4, rtol=0)


def _metric_inputs(n: int = 4):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 4, 4, generator=g) + 0.1  # positive pixels: deleting any lowers y_0
    faithful = x.expand(n, 2, 4, 4)  # the map is the image: most relevant = largest pixel
    maps = {"original": faithful, "weighted": -faithful}
    targets = torch.tensor([[0, 1]]).expand(n, 2)
    return x, maps, targets, SumNet()(x)


def test_metric_keys_wins_and_batch_split() -> None:
    from metrics.curves import FaithfulnessCurves
    from results.schema import ResultKey

    x, maps, targets, logits = _metric_inputs()
    whole = FaithfulnessCurves("gradcam", baselines=("zeros",), steps=5, threshold=None,
                               road_noise=0.0)
    whole.update(SumNet(), x, maps, targets, logits)
    split = FaithfulnessCurves("gradcam", baselines=("zeros",), steps=5, threshold=None,
                               road_noise=0.0, max_batch=7)
    for half in (slice(0, 1), slice(1, 4)):
        split.update(SumNet(), x[half], {c: m[half] for c, m in maps.items()}, targets[half],
                     logits[half])
    a, b = whole.compute(), split.compute()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-6)

    def key(q: str, c: str, curve: str, **kw: str) -> str:
        return str(ResultKey(q, "gradcam", "t1", "zeros", contrast=c, curve=curve,
                             score="logit", **kw))

    # the image itself as map deletes the most mass first: the weighted (negated) map loses
    # every deletion, LeRF, insertion and SRG comparison on the logit
    for curve in ("deletion", "deletion_lerf", "insertion", "srg"):
        assert a[key("auc_wins", "weighted", curve)] == 0
    assert a[key("auc", "original", "deletion")] < a[key("auc", "weighted", "deletion")]
    assert a[key("auc", "weighted", "deletion")] == a[key("auc", "original", "deletion_lerf")]
    srg = a[key("auc", "original", "deletion_lerf")] - a[key("auc", "original", "deletion")]
    torch.testing.assert_close(a[key("auc", "original", "srg")], srg)
    # the mean curve starts at the clean logit and ends at the baseline's (zeros: 0)
    clean = float(x.flatten(1).sum(1).mean())
    assert float(a[key("curve", "original", "deletion", point="p0")]) == pytest.approx(clean)
    assert float(a[key("curve", "original", "deletion", point="p4")]) == 0.0
    assert float(a["eval/curve_count/gradcam"]) == 4
    assert float(a["eval/curve_fraction/insertion/p1"]) == 0.25
    with pytest.raises(ConfigError, match="curve_steps"):
        FaithfulnessCurves("gradcam", steps=1)


def test_paired_auc_by_hand_and_merged_halves() -> None:
    import statistics

    from metrics.curves import FaithfulnessCurves
    from results.run_tables import spec_tables, table_spec
    from results.schema import ResultKey

    x, maps, targets, logits = _metric_inputs(5)
    maps["mean"] = torch.rand(5, 2, 4, 4, generator=torch.Generator().manual_seed(2))

    def metric() -> FaithfulnessCurves:
        return FaithfulnessCurves("gradcam", contrasts=("original", "weighted", "mean"),
                                  baselines=("zeros",), steps=5, threshold=None, road_noise=0.0)

    def key(q: str, c: str, curve: str, t: str = "t1", **kw: str) -> str:
        return str(ResultKey(q, "gradcam", t, "zeros", contrast=c, curve=curve, score="logit",
                             **kw))

    whole, a, b = metric(), metric(), metric()
    whole.update(SumNet(), x, maps, targets, logits)
    a.update(SumNet(), x[:2], {c: m[:2] for c, m in maps.items()}, targets[:2], logits[:2])
    b.update(SumNet(), x[2:], {c: m[2:] for c, m in maps.items()}, targets[2:], logits[2:])
    a.merge_state(b)  # what DDP's sum reduction gives
    one, two = whole.compute(), a.compute()
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(one[k], two[k], rtol=1e-6, atol=1e-6, equal_nan=True)
    # each sample alone: the AUC of its own curve; d = contrast - original per sample
    alone = []
    for i in range(5):
        m = metric()
        m.update(SumNet(), x[i:i + 1], {c: v[i:i + 1] for c, v in maps.items()},
                 targets[i:i + 1], logits[i:i + 1])
        alone.append(m.compute())
    for c in ("weighted", "mean"):
        for curve in ("deletion", "deletion_lerf", "insertion", "srg"):
            d = [float(r[key("auc", c, curve)]) - float(r[key("auc", "original", curve)])
                 for r in alone]
            assert float(one[key("diff_auc", c, curve, stat="mean")]) == pytest.approx(
                statistics.mean(d), abs=1e-5)
            assert float(one[key("diff_auc", c, curve, stat="se")]) == pytest.approx(
                statistics.stdev(d) / math.sqrt(5), abs=1e-5)
            assert float(one[key("diff_auc", c, curve, stat="n")]) == 5
    assert not any("diff_auc" in k and "/original/" in k for k in one)
    # the weighted (negated) map deletes the least relevant first: its deletion AUC is higher
    # (a significant loss) and its LeRF lower; the curves table bolds the original and counts it
    results = {k: float(v) for k, v in one.items()}
    assert float(one[key("diff_auc", "weighted", "deletion", stat="lo")]) > 0
    table = spec_tables(table_spec("curves"), results)[0]
    assert "wtd vs ori: 0 wins" in table.note and "n = 5 pairs per cell" in table.note
    from results.schema import higher_is_better
    for curve, higher in (("deletion", False), ("deletion_lerf", True), ("insertion", True),
                          ("srg", True)):
        assert higher_is_better(ResultKey.parse(key("diff_auc", "mean", curve, stat="lo"))) \
            is higher


class CountingSumNet(SumNet):
    """SumNet that records the size of every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return super().forward(x)


def test_end_points_are_forwarded_once_per_sample() -> None:
    # 3 samples, 2 baselines, 2 maps, 5 steps: the clean images' logits are given; 3 x 2 fully
    # replaced images, then 3 x 2 baselines x 2 t x 2 maps x 2 run curves x 3 inner steps
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 2, 4, 4, generator=g)
    maps = torch.randn(3, 2, 2, 4, 4, generator=g)
    bases = torch.stack([torch.zeros_like(x), torch.ones_like(x)])
    net = CountingSumNet()
    ranks = patch_ranks(maps, 1)
    targets = torch.tensor([[0, 1]]).expand(3, 2)
    clean = SumNet()(x)
    run = run_curves(net, x, ranks, targets, bases, ("zeros", "mean"), 5, 1, 50,
                     clean_logits=clean)
    assert sum(net.sizes) == 6 + 144 and max(net.sizes) == 50
    assert torch.equal(run[:, :, 0, :, :, 0, 0], clean[:, 0, None, None, None].expand(3, 2, 2, 2))
    y = run[..., 0]
    # fully replaced by the ones image: t1 scores its sum 2 x 16, t2 its constant logit 0
    assert torch.equal(y[:, 1, 0, :, :, -1], torch.full((3, 2, 2), 32.0))
    assert torch.equal(y[:, 1, 1, :, :, -1], torch.zeros(3, 2, 2))
    # two steps: the end points alone
    net.sizes.clear()
    two = run_curves(net, x, ranks, targets, bases, ("zeros", "mean"), 2, 1, 50,
                     clean_logits=clean)
    assert sum(net.sizes) == 6 and torch.equal(two[..., 0, :], run[..., 0, :])


def test_road_noise_is_keyed_by_sample_so_splits_and_ranks_agree() -> None:
    from metrics.curves import FaithfulnessCurves

    g = torch.Generator().manual_seed(4)
    x = torch.rand(4, 3, 6, 6, generator=g)
    maps = {c: torch.randn(4, 2, 6, 6, generator=g) for c in ("original", "weighted")}
    targets = torch.tensor([[0, 1]]).expand(4, 2)
    logits = SumNet()(x)

    def metric(noise: float = 0.3) -> FaithfulnessCurves:
        return FaithfulnessCurves("gradcam", baselines=("road",), steps=4, threshold=None,
                                  road_noise=noise, max_batch=9)

    def part(idx: list[int]) -> tuple:
        sel = torch.tensor(idx)
        return x[sel], {c: m[sel] for c, m in maps.items()}, targets[sel], logits[sel]

    whole = metric()
    whole.update(SumNet(), x, maps, targets, logits)
    # two "ranks" as the distributed sampler deals them: samples 0, 2 and 1, 3
    r0, r1 = metric(), metric()
    r0.update(SumNet(), *part([0, 2]), indices=[0, 2])
    r1.update(SumNet(), *part([1, 3]), indices=[1, 3])
    r0.merge_state(r1)
    a, b = whole.compute(), r0.compute()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-6, equal_nan=True)
    plain = metric(0.0)
    plain.update(SumNet(), x, maps, targets, logits)
    key = "eval/curve/gradcam/t1/road/original/deletion/logit/p3"
    assert float(a[key]) != pytest.approx(float(plain.compute()[key]), abs=1e-3)
    # the fully imputed image carries the same noise whatever the map: equal last points
    assert float(a[key]) == float(a[key.replace("original", "weighted")])
