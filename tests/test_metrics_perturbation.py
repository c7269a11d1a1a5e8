"""PerturbationScore against a plain per-image reference, mask semantics, chunking and merging."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from metrics import PerturbationScore
from metrics.functional import equal_keep, gaussian_blur, pixel_ranks, threshold_keep

CONTRASTS = ("original", "weighted")
BASELINES = ("blur", "zeros", "mean")
MODES = ("pos", "neg")
MASKINGS = ("threshold", "equal")
M = "gradcam"  # the method whose maps are fed: it names the result keys


def _ref_blur(img: torch.Tensor, k: int, sigma: float) -> torch.Tensor:
    """Plain 2-D Gaussian blur of one image [C, H, W] with reflect padding."""
    t = torch.arange(k, dtype=img.dtype) - k // 2
    g1 = torch.exp(-0.5 * (t / sigma) ** 2)
    g2 = torch.outer(g1, g1)
    g2 = g2 / g2.sum()
    padded = F.pad(img[None], (k // 2,) * 4, mode="reflect")
    c = img.shape[0]
    return F.conv2d(padded, g2.expand(c, 1, k, k), groups=c)[0]


def _ref_keep(maps: list[torch.Tensor], mode: str, masking: str) -> list[torch.Tensor]:
    """Keep-masks for the compared maps [H, W] of one image and rank, written plainly."""
    if masking == "threshold":
        return [m > 0 if mode == "pos" else m < 0 for m in maps]
    if mode == "pos":
        k = min(int((m > 0).sum()) for m in maps)
    else:
        k = max(int((m < 0).sum()) for m in maps)
    out = []
    for m in maps:
        flat = m.flatten().tolist()
        order = sorted(range(len(flat)), key=lambda j: (flat[j], j))
        replaced = order[:k] if mode == "pos" else order[len(flat) - k:]
        keep = torch.ones(len(flat), dtype=torch.bool)
        keep[replaced] = False
        out.append(keep.view(m.shape))
    return out


def _reference(model, x, maps, targets, logits, threshold):
    """Per-image loops over ranks, baselines, modes, maskings, contrasts; returns dict of means."""
    sums: dict[str, float] = {}
    samples: dict[str, list[float]] = {}  # per-sample values of relprob / prob per cell
    count = 0
    k_size, sigma = 29, 15 * x.shape[-1] / 224  # 64 px: round(101 * 64 / 224) = 29, odd
    for i in range(x.shape[0]):
        p = torch.softmax(logits[i], 0)
        t1, t2 = int(targets[i, 0]), int(targets[i, 1])
        if threshold is not None and not p[t2] > threshold:
            continue
        count += 1
        bases = {
            "blur": _ref_blur(x[i], k_size, sigma),
            "zeros": torch.zeros_like(x[i]),
            "mean": x[i].mean(dim=(1, 2), keepdim=True).expand_as(x[i]),
        }
        for r, t in (("t1", t1), ("t2", t2)):
            ups = [
                F.interpolate(maps[c][i : i + 1, ["t1", "t2"].index(r)][None], size=x.shape[-2:],
                              mode="bilinear", align_corners=True)[0, 0]
                for c in CONTRASTS
            ]
            for b in BASELINES:
                for mo in MODES:
                    for mk in MASKINGS:
                        keeps = _ref_keep(ups, mo, mk)
                        for c, keep in zip(CONTRASTS, keeps, strict=True):
                            pert = torch.where(keep, x[i], bases[b])
                            with torch.no_grad():
                                y = model(pert[None])[0]
                            rel = torch.exp(y[t]) / (torch.exp(y[t1]) + torch.exp(y[t2]))
                            pt = torch.softmax(y, 0)[t]
                            for q, v in (("relprob", rel), ("prob", pt), ("prob_drop", p[t] - pt)):
                                key = f"eval/{q}/{M}/{r}/{b}/{mo}/{mk}/{c}"
                                sums[key] = sums.get(key, 0.0) + float(v)
                                samples.setdefault(key, []).append(float(v))
        for r, t in (("t1", t1), ("t2", t2)):
            y = logits[i]
            rel = torch.exp(y[t]) / (torch.exp(y[t1]) + torch.exp(y[t2]))
            key = f"eval/clean_relprob/{M}/{r}"
            sums[key] = sums.get(key, 0.0) + float(rel)
            key = f"eval/clean_prob/{M}/{r}"
            sums[key] = sums.get(key, 0.0) + float(p[t])
    out = {k: v / count for k, v in sums.items()}
    out[f"eval/count/{M}"] = float(count)
    for key, wtd in samples.items():  # the paired statistics, by the textbook formulas
        if not key.endswith("/weighted") or "/prob_drop/" in key:
            continue
        ori = samples[key.removesuffix("weighted") + "original"]
        d = [w - o for w, o in zip(wtd, ori, strict=True)]
        se = statistics.stdev(d) / math.sqrt(len(d))
        mean, z = statistics.fmean(d), statistics.NormalDist().inv_cdf(0.975)
        diff = key.replace("eval/", "eval/diff_", 1)
        out.update({f"{diff}/mean": mean, f"{diff}/se": se, f"{diff}/lo": mean - z * se,
                    f"{diff}/hi": mean + z * se, f"{diff}/n": float(len(d))})
    return out


@pytest.fixture
def setup(tiny_vgg, images64):
    model = tiny_vgg.eval()
    x = images64
    with torch.no_grad():
        logits = model(x)
    targets = logits.topk(2, dim=1).indices
    g = torch.Generator().manual_seed(1)
    maps = {c: torch.randn(x.shape[0], 2, 8, 8, generator=g) for c in CONTRASTS}
    # a zero region and ties so the rules on <= 0 / >= 0 and ties by index are exercised
    maps["original"][:, :, :2, :] = 0.0
    return model, x, maps, targets, logits


def test_matches_plain_reference(setup):
    model, x, maps, targets, logits = setup
    metric = PerturbationScore(M, contrasts=CONTRASTS, threshold=None, max_batch=50)
    metric.update(model, x, maps, targets, logits)
    got = metric.compute()
    ref = _reference(model, x, maps, targets, logits, None)
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k].item() == pytest.approx(v, abs=1e-4), k


def test_threshold_selection(setup):
    model, x, maps, targets, logits = setup
    p2 = torch.softmax(logits, 1).gather(1, targets[:, 1:])[:, 0]
    thr = float(p2.sort().values[0] + p2.sort().values[1]) / 2  # drops exactly one image
    metric = PerturbationScore(M, contrasts=CONTRASTS, baselines=("zeros",), threshold=thr)
    metric.update(model, x, maps, targets, logits)
    got = metric.compute()
    assert got[f"eval/count/{M}"].item() == x.shape[0] - 1
    ref = _reference(model, x, maps, targets, logits, thr)
    for k, v in got.items():
        assert v.item() == pytest.approx(ref[k], abs=1e-4), k


# 16 rows per image here (2 baselines x t1/t2 x pos/neg x 2 contrasts), 3 images: slices of one
# image's block, one block per forward, two blocks and then the last one
@pytest.mark.parametrize("max_batch", [3, 16, 35])
def test_chunking_and_merge_give_same_numbers(setup, max_batch):
    model, x, maps, targets, logits = setup
    kw = dict(contrasts=CONTRASTS, baselines=("zeros", "mean"), maskings=("equal",), threshold=None)
    whole = PerturbationScore(M, max_batch=1000, **kw)
    whole.update(model, x, maps, targets, logits)
    chunked = PerturbationScore(M, max_batch=max_batch, **kw)
    chunked.update(model, x, maps, targets, logits)
    a, b = PerturbationScore(M, max_batch=7, **kw), PerturbationScore(M, max_batch=7, **kw)
    a.update(model, x[:1], {c: m[:1] for c, m in maps.items()}, targets[:1], logits[:1])
    b.update(model, x[1:], {c: m[1:] for c, m in maps.items()}, targets[1:], logits[1:])
    a.merge_state(b)
    w, c, m = whole.compute(), chunked.compute(), a.compute()
    for k in w:
        torch.testing.assert_close(c[k], w[k], atol=1e-5, rtol=0)
        torch.testing.assert_close(m[k], w[k], atol=1e-5, rtol=0)


def test_threshold_masks_keep_exactly_the_signed_pixels():
    m = torch.tensor([[0.5, 0.0, -0.2], [-1.0, 2.0, 0.0]])
    assert threshold_keep(m, "pos").tolist() == [[True, False, False], [False, True, False]]
    assert threshold_keep(m, "neg").tolist() == [[False, False, True], [True, False, False]]


def test_equal_masking_replaces_exactly_k_with_ties_by_index():
    a = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 2.0, 3.0]])  # 3 positive, 1 negative
    b = torch.tensor([[1.0, 1.0, 1.0], [1.0, -2.0, -3.0]])  # 4 positive, 2 negative
    maps = torch.stack([a, b])[None, None]  # [1, 1, 2, 2, 3]
    pos = equal_keep(maps, "pos")[0, 0]
    # k = min(3, 4) = 3: a replaces its 3 lowest (-1, then the two zeros in index order)
    assert pos[0].tolist() == [[True, False, False], [False, True, True]]
    # b: 1.0 ties everywhere except -2, -3; lowest are -3, -2, then the first 1.0 (index 0)
    assert pos[1].tolist() == [[False, True, True], [True, False, False]]
    assert (~pos).sum(dim=(-2, -1)).tolist() == [3, 3]
    neg = equal_keep(maps, "neg")[0, 0]
    # k = max(1, 2) = 2: the 2 highest; ties go to the larger index (stable ascending sort)
    assert (~neg).sum(dim=(-2, -1)).tolist() == [2, 2]
    assert neg[0].tolist() == [[True, True, True], [True, False, False]]
    assert neg[1].tolist() == [[True, True, False], [False, True, True]]
    ranks = pixel_ranks(maps)  # one sort shared by both modes gives the same masks
    assert torch.equal(equal_keep(maps, "pos", ranks), pos[None, None])
    assert torch.equal(equal_keep(maps, "neg", ranks), neg[None, None])


def test_blur_equals_2d_reference(images64):
    got = gaussian_blur(images64, 29, 15 * 64 / 224)
    ref = torch.stack([_ref_blur(img, 29, 15 * 64 / 224) for img in images64])
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="baselines"):
        PerturbationScore(M, baselines=("noise",))
    with pytest.raises(ValueError, match="max_batch"):
        PerturbationScore(M, max_batch=0)
    with pytest.raises(ValueError, match="threshold"):
        PerturbationScore(M, threshold=1.5)


def test_input_space_maps_are_summed_over_channels(setup):
    model, x, _maps, targets, logits = setup
    g = torch.Generator().manual_seed(4)
    maps5 = {c: torch.randn(x.shape[0], 2, 3, 64, 64, generator=g) for c in CONTRASTS}
    kw = dict(contrasts=CONTRASTS, baselines=("zeros",), threshold=None)
    a, b = PerturbationScore(M, **kw), PerturbationScore(M, **kw)
    a.update(model, x, maps5, targets, logits)
    b.update(model, x, {c: m.sum(2) for c, m in maps5.items()}, targets, logits)
    for k, v in a.compute().items():
        torch.testing.assert_close(v, b.compute()[k])


def test_blur_kernel_scales_with_image_size():
    from metrics.functional import blur_params

    assert blur_params(224) == (101, 15.0)
    assert blur_params(64) == (29, 15 * 64 / 224)
    assert blur_params(32)[0] == 15  # round(14.4) = 14 -> odd 15


def test_sigma_range_is_seeded(setup):
    model, x, maps, targets, logits = setup
    kw = dict(contrasts=CONTRASTS, baselines=("blur",), maskings=("threshold",), threshold=None,
              sigma_range=(5.0, 25.0))
    a, b = PerturbationScore(M, seed=7, **kw), PerturbationScore(M, seed=7, **kw)
    fixed = PerturbationScore(M, **{**kw, "sigma_range": None})
    for m in (a, b, fixed):
        m.update(model, x, maps, targets, logits)
    key = f"eval/relprob/{M}/t1/blur/pos/threshold/original"
    assert a.compute()[key] == b.compute()[key]
    assert a.compute()[key] != fixed.compute()[key]
