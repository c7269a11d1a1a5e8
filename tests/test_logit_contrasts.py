"""Contrasts as functions of the logits: the paper's four in that form equal the closed-form rows;
Finer-CAM's two published targets equal a direct autograd of the target through the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from callbacks.contrastive_evaluation import ContrastiveEvaluation
from callbacks.evaluation_step import EvaluationStep
from errors import ConfigError
from explainers import LogitContrast, explain
from explainers.contrasts import contrast_rows, rivals
from explainers.logit_contrasts import PAPER_FUNCTIONS, function_rows, named
from results.schema import AXES, ResultKey
from tests.test_explainers_reference import REF, _no_inplace, grad_of


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_paper_contrasts_as_functions_equal_the_closed_form_rows(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(6, 9, generator=g)).to(dtype)
    logits[0, :] = 0.0  # ties: the rival and the neighbours are still well defined
    targets = logits.topk(3, dim=1).indices
    closed = contrast_rows(logits, targets, rivals(logits, targets),
                           ("original", "weighted", "mean", "max"))  # [4, k, N, C]
    for i, name in enumerate(("original", "weighted", "mean", "max")):
        rows = function_rows(logits, targets, PAPER_FUNCTIONS[name]).transpose(0, 1)
        assert (rows - closed[i]).abs().max() < 1e-6, name
    # gradcam++'s weighted row is the gradient of p_t
    prob = contrast_rows(logits, targets, rivals(logits, targets), ("weighted",),
                         prob_weighted=True)[0]
    rows = function_rows(logits, targets, PAPER_FUNCTIONS["prob"]).transpose(0, 1)
    assert (rows - prob).abs().max() < 1e-6


def _published_finer(y: Tensor, t: int, form: str, gamma: float, alpha: float,
                     top: int) -> Tensor:
    """The published targets, neighbours as pytorch-grad-cam picks them (numpy argsort of
    |y - y_t|, ranks 1..top)."""
    order = np.argsort(np.abs(y.detach().numpy() - y.detach().numpy()[t]), kind="stable")
    ref = [int(j) for j in order[1:top + 1]]
    if form == "finer":
        return y[t] - gamma * y[ref].mean()
    p = torch.softmax(y, dim=-1)
    num = sum(p[j] * (y[t] - alpha * y[j]) for j in ref)
    return num / (sum(p[j] for j in ref) + 1e-9)


@pytest.mark.parametrize(("method", "layer"), [
    ("gradcam", "features.8"), pytest.param("gradient", None, marks=pytest.mark.slow),
    pytest.param("gradcam++", "features.8", marks=pytest.mark.slow)])
def test_finer_maps_equal_autograd_of_the_published_targets(
    tiny_vgg: nn.Module, images: Tensor, method: str, layer: str | None
) -> None:
    model, images = _no_inplace(tiny_vgg), images[:2]
    options = {"finer": {"gamma": 0.5, "top": 2}, "finer_weighted": {"alpha": 0.7, "top": 3}}
    contrasts = [named(n, **o) for n, o in options.items()]
    res = explain(model, images, method, layer, topk=2, contrasts=contrasts)
    defaults = explain(model, images, method, layer, topk=2,
                       contrasts=("finer", "finer_weighted"))
    for b in range(images.shape[0]):
        for r in range(2):
            t = int(res.targets[b, r])
            for form, opt in options.items():
                for given, maps in ((opt, res.maps), ({}, defaults.maps)):
                    kw = {"gamma": 0.6, "alpha": 1.0, "top": 3, **given}
                    def z(y: Tensor, t: int = t, f: str = form, kw: dict = kw) -> Tensor:
                        return _published_finer(y[0], t, f, **kw)[None]

                    a, grad = grad_of(model, images[b:b + 1], layer, z)
                    ref = REF[method](a, grad)[0]
                    scale = float(ref.abs().max())
                    assert scale > 0
                    assert (maps[form][b, r] - ref).abs().max() <= 1e-5 * max(scale, 1.0), (
                        form, given, b, r)


def test_a_user_function_of_the_logits(tiny_vgg: nn.Module, images: Tensor) -> None:
    def twice(y: Tensor, t: Tensor) -> Tensor:
        return 2 * y.gather(0, t[None])[0]

    res = explain(tiny_vgg, images, "gradcam", "features.8", topk=2,
                  contrasts=["original", twice, LogitContrast("margin", PAPER_FUNCTIONS["max"])])
    assert list(res.maps) == ["original", "twice", "margin"]
    torch.testing.assert_close(res.maps["twice"], 2 * res.maps["original"])
    plain = explain(tiny_vgg, images, "gradcam", "features.8", topk=2, contrasts=["max"])
    torch.testing.assert_close(res.maps["margin"], plain.maps["max"])


def test_bad_contrasts_are_one_line_errors(tiny_vgg: nn.Module, images: Tensor) -> None:
    with pytest.raises(ConfigError, match="unknown contrasts"):
        explain(tiny_vgg, images, "gradcam", "features.8", contrasts=["finest"])
    with pytest.raises(ConfigError, match="scalar"):
        explain(tiny_vgg, images, "gradcam", "features.8", contrasts=[lambda y, t: y])
    with pytest.raises(ConfigError, match="repeat"):
        explain(tiny_vgg, images, "gradcam", "features.8",
                contrasts=["finer", named("finer", gamma=0.1)])
    with pytest.raises(ConfigError, match="takes no option"):
        named("finer", alpha=2.0)
    with pytest.raises(ConfigError, match="top=0"):
        ContrastiveEvaluation(contrasts=("original", "finer"), finer_top=0)


def test_the_evaluation_takes_finer(tiny_vgg: nn.Module, images: Tensor) -> None:
    assert AXES["contrast"].title("finer_weighted") == "finer_w"
    cb = ContrastiveEvaluation(contrasts=("original", "weighted", "finer"), finer_gamma=0.5)
    step: EvaluationStep = cb.evaluation_step("features.8", (0.0,) * 3, (1.0,) * 3)
    assert step.explain_contrasts[2].options == {"gamma": 0.5, "top": 3}
    step = EvaluationStep(
        methods=("gradcam",), layer="features.8", topk=2, contrasts=("original", "finer"),
        baselines=("zeros",), modes=("pos",), maskings=("threshold",), threshold=None,
        max_batch=64, gradient_sign=False, steps=(1,), eps=1e-3, memory_budget=None,
        localization=False, mean=(0.0,) * 3, std=(1.0,) * 3)
    out = step.update(tiny_vgg, images, torch.zeros(4, dtype=torch.long))
    values = step.compute()
    key = str(ResultKey("relprob", "gradcam", "t1", "zeros", "pos", "threshold", "finer"))
    assert 0.0 < values[key] < 1.0 and values["eval/count/gradcam"] == 4
    ref = explain(tiny_vgg, images, "gradcam", "features.8", topk=2, contrasts=["finer"])
    torch.testing.assert_close(out["gradcam"].maps["finer"], ref.maps["finer"])


def _fullgrad_reference(model: nn.Module, x: Tensor, fn: object) -> Tensor:
    """FullGrad of ``fn(logits) [1]`` for one image, written out: hooks on every conv / BN
    output, one backward, the authors' post-processing term by term."""
    outs: list[tuple[nn.Module, Tensor]] = []

    def hook(m: nn.Module, _i: object, out: Tensor) -> None:
        out.retain_grad()
        outs.append((m, out))

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    inp = x.clone().requires_grad_(True)
    fn(model(inp)).sum().backward()
    for h in hs:
        h.remove()

    def psi(t: Tensor) -> Tensor:
        t = t.abs()
        t = t - t.flatten(1).min(1).values[:, None, None, None]
        t = t / (t.flatten(1).max(1).values[:, None, None, None] + 1e-6)
        t = torch.nn.functional.interpolate(t, size=x.shape[-2:], mode="bilinear",
                                            align_corners=True)
        return t.sum(1)

    cam = psi(inp.grad * x)
    for m, out in outs:
        if isinstance(m, nn.BatchNorm2d):
            b = m.bias - m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps)
        else:
            b = m.bias
        cam = cam + psi(out.grad * b.detach()[None, :, None, None])
    return cam[0]


def test_fullgrad_equals_a_direct_per_target_computation(tiny_vgg: nn.Module,
                                                         images: Tensor) -> None:
    model, x = _no_inplace(tiny_vgg), images[:2]
    res = explain(model, x, "fullgrad", topk=2, contrasts=("original", "weighted", "finer"))
    assert res.maps["original"].shape == (2, 2, 32, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for b in range(1):  # the second image only shares the batch
        for r in range(2):
            t = int(res.targets[b, r])
            ref = _fullgrad_reference(model, x[b:b + 1], lambda y, t=t: y[:, t])
            torch.testing.assert_close(res.maps["original"][b, r], ref, rtol=1e-5, atol=1e-5)
            # weighted: FullGrad of the gradient of p_t (the paper's row times p_t (1 - p_t))
            ref = _fullgrad_reference(model, x[b:b + 1], lambda y, t=t: y.softmax(1)[:, t])
            torch.testing.assert_close(res.maps["weighted"][b, r], ref, rtol=1e-4, atol=1e-4)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
