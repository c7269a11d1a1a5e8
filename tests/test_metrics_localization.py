"""PartLocalization (shares and pointing game) against a plain per-sample reference, hand-made
masks and state merging."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from metrics import PartLocalization

CONTRASTS = ("original", "weighted")
M = "gradcam"  # the method whose maps are fed: it names the result keys


def _reference(maps, targets, logits, masks, attrs, threshold):
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    samples: dict[str, dict[int, float]] = {}  # key -> {sample: value} where the map counts
    n_sel = 0
    for i in range(targets.shape[0]):
        p = torch.softmax(logits[i], 0)
        if threshold is not None and not p[targets[i, 1]] > threshold:
            continue
        n_sel += 1
        for r in range(2):
            t, s = int(targets[i, r]), int(targets[i, 1 - r])
            differ = torch.zeros(masks.shape[-2:], dtype=torch.bool)
            shared = torch.zeros(masks.shape[-2:], dtype=torch.bool)
            for part in range(masks.shape[1]):
                if attrs[t, part] != attrs[s, part]:
                    differ |= masks[i, part]
                else:
                    shared |= masks[i, part]
            for c in CONTRASTS:
                m = F.interpolate(maps[c][i : i + 1, r : r + 1], size=masks.shape[-2:],
                                  mode="bilinear", align_corners=True)[0, 0].clamp(min=0)
                if m.sum() <= 0:
                    continue
                cell = f"t{r + 1}/{c}"
                top = int(torch.argmax(m))  # first maximal pixel, row-major
                row, col = divmod(top, m.shape[1])
                for q, v in (("differ_share", m[differ].sum() / m.sum()),
                             ("shared_share", m[shared].sum() / m.sum()),
                             ("pointing_differ", differ[row, col]),
                             ("pointing_shared", shared[row, col])):
                    key = f"eval/{q}/{M}/{cell}"
                    sums[key] = sums.get(key, 0.0) + float(v)
                    samples.setdefault(key, {})[i] = float(v)
                counts[cell] = counts.get(cell, 0) + 1
    out = {k: v / counts[k.split("/", 3)[3]] for k, v in sums.items()}
    out[f"eval/count/{M}/t1"] = out[f"eval/count/{M}/t2"] = float(n_sel)
    z = statistics.NormalDist().inv_cdf(0.975)
    for key in [k for k in sums if k.endswith("/weighted")]:  # pairs where both maps count
        wtd, ori = samples[key], samples[key.removesuffix("weighted") + "original"]
        d = [wtd[i] - ori[i] for i in sorted(wtd.keys() & ori.keys())]
        mean = statistics.fmean(d)
        se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else math.nan
        diff = key.replace("eval/", "eval/diff_", 1)
        out.update({f"{diff}/mean": mean, f"{diff}/se": se, f"{diff}/lo": mean - z * se,
                    f"{diff}/hi": mean + z * se, f"{diff}/n": float(len(d))})
    return out


def _data(b: int = 6):
    g = torch.Generator().manual_seed(3)
    maps = {c: torch.randn(b, 2, 4, 4, generator=g) for c in CONTRASTS}
    maps["weighted"][0] = -1.0  # no positive mass: left out of the weighted means
    logits = torch.randn(b, 5, generator=g) * 2
    targets = logits.topk(2, 1).indices
    masks = torch.rand(b, 3, 16, 16, generator=g) > 0.6
    attrs = torch.randint(0, 2, (5, 3), generator=g)
    return maps, targets, logits, masks, attrs


@pytest.mark.parametrize("threshold", [None, 0.1])
def test_matches_plain_reference(threshold):
    maps, targets, logits, masks, attrs = _data()
    metric = PartLocalization(M, contrasts=CONTRASTS, threshold=threshold)
    metric.update(maps, targets, logits, masks, attrs)
    got = metric.compute()
    ref = _reference(maps, targets, logits, masks, attrs, threshold)
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k].item() == pytest.approx(v, abs=1e-5, nan_ok=True), k
    # sample 0's weighted map has no positive mass: 5 pairs of 6 samples without a threshold
    if threshold is None:
        assert got[f"eval/diff_differ_share/{M}/t1/weighted/n"] == 5


def test_hand_made_masks():
    maps = {c: torch.zeros(1, 2, 2, 2) for c in CONTRASTS}
    maps["original"][0, :, 0, 0] = 3.0  # all mass on part 0
    maps["original"][0, :, 1, 1] = 1.0  # and a quarter on part 1
    maps["weighted"][0, :, 1, 1] = 2.0
    masks = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    masks[0, 0, 0, 0] = True
    masks[0, 1, 1, 1] = True
    attrs = torch.tensor([[0, 0], [0, 1]])  # classes 0 and 1 differ in part 1 only
    logits = torch.tensor([[1.0, 0.5]])
    metric = PartLocalization(M, contrasts=CONTRASTS, threshold=None)
    metric.update(maps, torch.tensor([[0, 1]]), logits, masks, attrs)
    got = metric.compute()
    assert got[f"eval/differ_share/{M}/t1/original"].item() == pytest.approx(0.25)
    assert got[f"eval/shared_share/{M}/t1/original"].item() == pytest.approx(0.75)
    assert got[f"eval/differ_share/{M}/t2/weighted"].item() == pytest.approx(1.0)
    # the original maps peak on part 0 (shared), the weighted ones on part 1 (differs)
    assert got[f"eval/pointing_shared/{M}/t1/original"].item() == 1.0
    assert got[f"eval/pointing_differ/{M}/t1/original"].item() == 0.0
    assert got[f"eval/pointing_differ/{M}/t2/weighted"].item() == 1.0
    assert got[f"eval/pointing_shared/{M}/t2/weighted"].item() == 0.0


def test_pointing_game_off_the_parts_and_ties() -> None:
    """A maximum outside every part hits neither region; a tie goes to the first pixel."""
    maps = {c: torch.zeros(2, 2, 2, 2) for c in CONTRASTS}
    maps["original"][0, :, 1, 0] = 5.0  # sample 0: peak on the background pixel (1, 0)
    maps["original"][0, :, 0, 0] = 1.0
    maps["original"][1, :, 0, 1] = 2.0  # sample 1: a tie between (0, 1) and (1, 1)
    maps["original"][1, :, 1, 1] = 2.0
    maps["weighted"] = maps["original"].clone()
    masks = torch.zeros(2, 2, 2, 2, dtype=torch.bool)
    masks[:, 0, 0, 0] = True  # part 0 (shared)
    masks[:, 1, 0, 1] = True  # part 1 (differs): first of the tied pixels
    masks[:, 1, 1, 1] = False
    attrs = torch.tensor([[0, 0], [0, 1]])
    metric = PartLocalization(M, contrasts=CONTRASTS, threshold=None)
    metric.update(maps, torch.tensor([[0, 1], [1, 0]]), torch.zeros(2, 2), masks, attrs)
    got = metric.compute()
    # sample 1 only
    assert got[f"eval/pointing_differ/{M}/t1/original"].item() == pytest.approx(0.5)
    assert got[f"eval/pointing_shared/{M}/t1/original"].item() == 0.0
    assert got[f"eval/differ_share/{M}/t1/original"].item() == pytest.approx((0.0 + 0.5) / 2)
    assert got[f"eval/shared_share/{M}/t1/original"].item() == pytest.approx((1 / 6 + 0.0) / 2)


def test_merge_equals_one_instance():
    maps, targets, logits, masks, attrs = _data()
    whole = PartLocalization(M, threshold=None)
    whole.update(maps, targets, logits, masks, attrs)
    a, b = PartLocalization(M, threshold=None), PartLocalization(M, threshold=None)
    a.update({c: m[:2] for c, m in maps.items()}, targets[:2], logits[:2], masks[:2], attrs)
    b.update({c: m[2:] for c, m in maps.items()}, targets[2:], logits[2:], masks[2:], attrs)
    a.merge_state(b)
    for k, v in whole.compute().items():
        torch.testing.assert_close(a.compute()[k], v)


def test_mismatched_parts_raise():
    maps, targets, logits, masks, attrs = _data()
    with pytest.raises(ValueError, match="part_attributes"):
        PartLocalization(M, ).update(maps, targets, logits, masks, attrs[:, :2])
