"""GradientSignPerturbation against a plain per-image, per-contrast, per-n autograd reference."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from metrics import GradientSignPerturbation

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CONTRASTS = ("original", "mean", "max", "weighted")
STEPS = (1, 3)
EPS = 3e-2  # larger than the paper's 3e-3 so that the changes are well above float noise


def _objective(y: torch.Tensor, t: int, contrast: str) -> torch.Tensor:
    """The scalar whose input gradient is the contrast's gradient explanation (SPEC §1.3, §3)."""
    if contrast == "original":
        return y[t]
    if contrast == "weighted":
        return torch.softmax(y, 0)[t]
    others = torch.cat([y[:t], y[t + 1 :]])
    if contrast == "mean":
        return y[t] - others.mean()
    return y[t] - others.max()


def _reference(model, x, labels):
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    out: dict[str, float] = {}
    b = x.shape[0]
    for i in range(b):
        t = int(labels[i])
        with torch.no_grad():
            y0 = model(x[i : i + 1])[0]
        clean = ((y0.argmax() == t).float(), y0[t], torch.softmax(y0, 0)[t])
        for q, v in zip(("acc", "logit", "prob"), clean, strict=True):
            out[f"clean_{q}"] = out.get(f"clean_{q}", 0.0) + float(v) / b
        x0 = x[i] * std + mean
        for c in CONTRASTS:
            for n in STEPS:
                xp = x0.clone()
                for _ in range(n):
                    xn = ((xp - mean) / std).requires_grad_(True)
                    (g,) = torch.autograd.grad(_objective(model(xn[None])[0], t, c), xn)
                    xp = xp + EPS / n * torch.sign(g)
                    xp = torch.clamp(xp, x0 - EPS, x0 + EPS).clamp(0, 1)
                with torch.no_grad():
                    y = model(((xp - mean) / std)[None])[0]
                pert = ((y.argmax() == t).float(), y[t], torch.softmax(y, 0)[t])
                for q, v, v0 in zip(("acc", "logit", "prob"), pert, clean, strict=True):
                    key = f"delta_{q}/{c}/n{n}"
                    out[key] = out.get(key, 0.0) + float(v - v0) / b
    out["count"] = float(b)
    return out


def _plain_explain(model, x, method, layer, targets, contrasts):
    """Batched input gradients per the explainers interface, written with autograd."""
    assert method == "gradient" and layer is None
    x = x.detach().requires_grad_(True)
    y = model(x)
    objs = torch.stack([_objective(y[i], int(targets[i]), contrasts[0]) for i in range(len(y))])
    (g,) = torch.autograd.grad(objs.sum(), x)
    return SimpleNamespace(maps={contrasts[0]: g[:, None]})


@pytest.fixture
def data(tiny_vgg):
    g = torch.Generator().manual_seed(5)
    pixels = torch.rand(3, 3, 32, 32, generator=g)
    x = (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    model = tiny_vgg.eval()
    with torch.no_grad():
        labels = model(x).topk(2, 1).indices[:, 1]  # second class, so perturbing can flip it
    labels[0] = model(x[:1]).argmax()  # one correct sample
    return model, x, labels


def _check(metric, model, x, labels):
    metric.update(model, x, labels)
    got = metric.compute()
    ref = _reference(model, x, labels)
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k].item() == pytest.approx(v, abs=2e-4, rel=1e-3), k
    # the perturbation must actually move the numbers, else the comparison is vacuous
    assert abs(ref["delta_logit/original/n3"]) > 1e-3


def test_batched_loop_matches_reference_with_plain_gradients(data, monkeypatch):
    """Checks the metric's batching, step schedule and clamping independently of the engine."""
    import explainers

    monkeypatch.setattr(explainers, "explain", _plain_explain, raising=False)
    model, x, labels = data
    _check(GradientSignPerturbation(MEAN, STD, steps=STEPS, eps=EPS, max_batch=4), model, x, labels)


def test_matches_reference_with_explainers_engine(data):
    explainers = pytest.importorskip("explainers")
    if not hasattr(explainers, "explain"):
        pytest.skip("explainers.explain not available yet")
    model, x, labels = data
    _check(GradientSignPerturbation(MEAN, STD, steps=STEPS, eps=EPS), model, x, labels)


def test_merge_equals_one_instance(data, monkeypatch):
    import explainers

    monkeypatch.setattr(explainers, "explain", _plain_explain, raising=False)
    model, x, labels = data
    kw = dict(steps=(2,), eps=EPS, contrasts=("weighted",))
    whole = GradientSignPerturbation(MEAN, STD, **kw)
    whole.update(model, x, labels)
    a, b = GradientSignPerturbation(MEAN, STD, **kw), GradientSignPerturbation(MEAN, STD, **kw)
    a.update(model, x[:1], labels[:1])
    b.update(model, x[1:], labels[1:])
    a.merge_state(b)
    for k, v in whole.compute().items():
        torch.testing.assert_close(a.compute()[k], v, atol=1e-5, rtol=0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="steps"):
        GradientSignPerturbation(MEAN, STD, steps=(0,))
    with pytest.raises(ValueError, match="std"):
        GradientSignPerturbation(MEAN, (1.0, 0.0, 1.0))
