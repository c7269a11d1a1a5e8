"""GradientSignPerturbation against a plain per-image, per-contrast, per-n autograd loop."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import Tensor, nn

from explainers.memory import graph_bytes_per_input
from metrics import GradientSignPerturbation

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CONTRASTS = ("original", "mean", "max", "weighted")
STEPS = (1, 3)
EPS = 3e-2  # larger than the paper's 3e-3 so that the changes are well above float noise


def _objective(y: Tensor, t: int, contrast: str) -> Tensor:
    """The scalar whose input gradient is the contrast's gradient explanation (docs/protocol.md
    §1.3, §3).

    weighted: y_t - sum_s alpha_s y_s with alpha = softmax of the other logits, held fixed: the
    gradient of p_t divided by p_t (1 - p_t) > 0, so the same sign, without 0 at p_t == 1.
    """
    others = torch.cat([y[:t], y[t + 1 :]])
    if contrast == "original":
        return y[t]
    if contrast == "weighted":
        return y[t] - (torch.softmax(others.detach(), 0) * others).sum()
    if contrast == "mean":
        return y[t] - others.mean()
    return y[t] - others.max()


def _reference(model: nn.Module, x: Tensor, labels: Tensor) -> dict[str, float]:
    """Every (image, contrast, n) run on its own, one forward + backward per step."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    out: dict[str, float] = {}
    deltas: dict[str, list[float]] = {}  # per-sample deltas per key
    b = x.shape[0]
    for i in range(b):
        t = int(labels[i])
        with torch.no_grad():
            y0 = model(x[i : i + 1])[0]
        clean = ((y0.argmax() == t).float(), y0[t], torch.softmax(y0, 0)[t])
        for q, v in zip(("acc", "logit", "prob"), clean, strict=True):
            key = f"eval/clean_{q}/gradient"
            out[key] = out.get(key, 0.0) + float(v) / b
        x0 = x[i] * std + mean
        for c in CONTRASTS:
            for n in STEPS:
                xp = x0.clone()
                for step in range(n):
                    # the first step starts at the given (normalised) image itself
                    xn = (x[i] if step == 0 else (xp - mean) / std).clone().requires_grad_(True)
                    (g,) = torch.autograd.grad(_objective(model(xn[None])[0], t, c), xn)
                    xp = xp + EPS / n * torch.sign(g)
                    xp = torch.clamp(xp, x0 - EPS, x0 + EPS).clamp(0, 1)
                with torch.no_grad():
                    y = model(((xp - mean) / std)[None])[0]
                pert = ((y.argmax() == t).float(), y[t], torch.softmax(y, 0)[t])
                for q, v, v0 in zip(("acc", "logit", "prob"), pert, clean, strict=True):
                    key = f"eval/delta_{q}/gradient/{c}/n{n}"
                    out[key] = out.get(key, 0.0) + float(v - v0) / b
                    deltas.setdefault(key, []).append(float(v - v0))
    out["eval/count/gradient"] = float(b)
    z = statistics.NormalDist().inv_cdf(0.975)
    for key, values in deltas.items():  # paired with the original, by the textbook formulas
        c = key.split("/")[3]
        if c == "original":
            continue
        ori = deltas[key.replace(f"/{c}/", "/original/")]
        d = [v - o for v, o in zip(values, ori, strict=True)]
        mean, se = statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d))
        diff = key.replace("eval/", "eval/diff_", 1)
        out.update({f"{diff}/mean": mean, f"{diff}/se": se, f"{diff}/lo": mean - z * se,
                    f"{diff}/hi": mean + z * se, f"{diff}/n": float(len(d))})
    return out


@pytest.fixture
def data(tiny_vgg: nn.Module) -> tuple[nn.Module, Tensor, Tensor]:
    g = torch.Generator().manual_seed(5)
    pixels = torch.rand(3, 3, 32, 32, generator=g)
    x = (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    model = tiny_vgg.eval()
    with torch.no_grad():
        labels = model(x).topk(2, 1).indices[:, 1]  # second class, so perturbing can flip it
    labels[0] = model(x[:1]).argmax()  # one correct sample
    return model, x, labels


def _metric(**kw: object) -> GradientSignPerturbation:
    return GradientSignPerturbation(MEAN, STD, **{"steps": STEPS, "eps": EPS, **kw})


def _results(metric: GradientSignPerturbation, model: nn.Module, x: Tensor,
             labels: Tensor) -> dict[str, float]:
    metric.update(model, x, labels)
    return {k: float(v) for k, v in metric.compute().items()}


def test_matches_the_plain_per_run_loop(data: tuple[nn.Module, Tensor, Tensor]) -> None:
    model, x, labels = data
    ref = _reference(model, x, labels)
    got = _results(_metric(memory_budget=None), model, x, labels)
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k
    # the perturbation must actually move the numbers, else the comparison is vacuous
    logit, prob = "eval/delta_logit/gradient", "eval/delta_prob/gradient"
    assert abs(ref[f"{logit}/original/n3"]) > 1e-2
    assert ref[f"{logit}/original/n3"] != pytest.approx(ref[f"{logit}/original/n1"])
    assert ref[f"{prob}/weighted/n3"] != pytest.approx(ref[f"{prob}/original/n3"])


class _Counter:
    """Forward passes (with / without grad, and their inputs) and batched VJPs with their rows."""

    def __init__(self, model: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
        self.grad_inputs: list[int] = []
        self.plain_inputs: list[int] = []
        self.backward_inputs: list[int] = []  # inputs of each backward pass (one row each)
        real_grad = torch.autograd.grad

        def counting_grad(*args: object, **kwargs: object) -> tuple[Tensor, ...]:
            (rows,) = args[2]
            assert not kwargs.get("is_grads_batched") and rows.dim() == 2
            self.backward_inputs.append(rows.shape[0])
            return real_grad(*args, **kwargs)

        def pre(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
            target = self.grad_inputs if torch.is_grad_enabled() else self.plain_inputs
            target.append(args[0].shape[0])

        monkeypatch.setattr(torch.autograd, "grad", counting_grad)
        self.handle = model.register_forward_pre_hook(pre)


def test_one_pass_per_step_and_one_per_distinct_point(
    data: tuple[nn.Module, Tensor, Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defaults (n = 1, 2, 10; 4 contrasts): per image 1 + 4 * (1 + 9) = 41 distinct points, each
    one forward + backward (the clean one a backward per contrast over its one graph), in one
    pass per step."""
    model, x, labels = data
    count = _Counter(model, monkeypatch)
    GradientSignPerturbation(MEAN, STD, memory_budget=None).update(model, x, labels)
    count.handle.remove()
    b = x.shape[0]
    assert len(count.grad_inputs) == 10  # the clean image + steps 1..9
    assert sum(count.grad_inputs) == 41 * b
    # clean: every contrast's row for every image; step 1: the n = 2 and n = 10 runs of every
    # contrast, each input with its own row; steps 2..9: the n = 10 runs
    assert count.backward_inputs == [b] * 4 + [2 * 4 * b] + [4 * b] * 8
    assert count.plain_inputs == [3 * 4 * b]  # final scores of every run, one no-grad pass


def test_memory_budget_chunks_with_identical_numbers(
    data: tuple[nn.Module, Tensor, Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, x, labels = data
    whole = _results(_metric(memory_budget=None), model, x, labels)
    metric = _metric()
    saved, widest = graph_bytes_per_input(model, x[:1])
    image = 3 * 32 * 32 * 4
    one_row = saved + image + 2 * widest + 2 * image
    metric.memory_budget = 5 * one_row  # 5 inputs with 1 VJP row, fewer with 4 rows
    assert metric.rows_per_chunk(model, x[:1], 1) == 5
    four_rows = one_row + 3 * widest + 6 * image
    assert metric.rows_per_chunk(model, x[:1], 4) == 5 * one_row // four_rows
    count = _Counter(model, monkeypatch)
    chunked = _results(metric, model, x, labels)
    count.handle.remove()
    assert max(count.grad_inputs) <= 5 and len(count.grad_inputs) > 3
    assert sum(count.grad_inputs) == (1 + 4 * 2) * 3
    for k, v in whole.items():
        assert chunked[k] == pytest.approx(v, abs=1e-6), k


def test_graph_bytes_per_input_counts_saved_activations() -> None:
    """conv (saves its input: 3 x 8 x 8 floats) -> BN (its input) -> in-place ReLU (its output)
    -> linear (the ReLU output again, one storage): 768 + 1024 + 1024 bytes per image."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                          nn.Flatten(), nn.Linear(256, 5)).eval()
    assert graph_bytes_per_input(model, torch.randn(1, 3, 8, 8)) == (2816, 1024)
    assert graph_bytes_per_input(model, torch.randn(1, 3, 8, 8), layer="1") == (1024, 1024)


def test_bf16_model_gives_close_numbers(data: tuple[nn.Module, Tensor, Tensor]) -> None:
    """bf16 weights (--trainer.precision bf16-true): inputs are cast where they enter the model,
    steps and clamps stay float32 (the issue's crash: a float32 batch fed to bf16 weights)."""
    model, x, labels = data
    ref = _results(_metric(memory_budget=None), model, x, labels)
    half = _results(_metric(memory_budget=None), model.to(torch.bfloat16), x.bfloat16(), labels)
    acc, prob = "eval/clean_acc/gradient", "eval/clean_prob/gradient"
    logit = "eval/delta_logit/gradient/original/n1"
    assert half[acc] == ref[acc]
    assert half[prob] == pytest.approx(ref[prob], abs=0.02)
    assert half[logit] == pytest.approx(ref[logit], rel=0.25)


def test_merge_equals_one_instance(data: tuple[nn.Module, Tensor, Tensor]) -> None:
    model, x, labels = data
    kw = {"steps": (2,), "contrasts": ("weighted",)}
    whole = _metric(**kw)
    whole.update(model, x, labels)
    a, b = _metric(**kw), _metric(**kw)
    a.update(model, x[:1], labels[:1])
    b.update(model, x[1:], labels[1:])
    a.merge_state(b)
    for k, v in whole.compute().items():
        torch.testing.assert_close(a.compute()[k], v, atol=1e-6, rtol=0)


def test_bad_arguments_raise(data: tuple[nn.Module, Tensor, Tensor]) -> None:
    with pytest.raises(ValueError, match="steps"):
        GradientSignPerturbation(MEAN, STD, steps=(0,))
    with pytest.raises(ValueError, match="std"):
        GradientSignPerturbation(MEAN, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"memory_budget=0: give bytes > 0"):
        GradientSignPerturbation(MEAN, STD, memory_budget=0)
    model, x, labels = data
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 10\)"):
        _metric().update(model, x, labels + 10)


def test_chunk_cost_is_measured_once_per_network(tiny_vgg: nn.Module,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The callback wraps the network anew every batch: the cost is still measured once."""
    from contextlib import nullcontext

    import metrics.gradient_sign as gs
    from callbacks.precision import InPrecision

    calls = []
    real = gs.graph_bytes_per_input
    monkeypatch.setattr(gs, "graph_bytes_per_input",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    metric = _metric()
    x = torch.zeros(1, 3, 32, 32)
    for _ in range(3):
        metric.rows_per_chunk(InPrecision(tiny_vgg, nullcontext), x, 1)
    metric.rows_per_chunk(InPrecision(tiny_vgg, nullcontext), torch.zeros(1, 3, 64, 64), 1)
    assert len(calls) == 2  # 32 px once, 64 px once
