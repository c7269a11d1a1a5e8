"""Parameter randomisation (MPRT): the cascade's order, its numbers against a hand-made cascade,
the trained weights untouched, and its place in the evaluation step."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from callbacks.evaluation_step import EvaluationStep
from explainers import explain
from metrics.functional.similarity import figure_normalise, spearman, ssim
from metrics.parameter_randomisation import (
    ParameterRandomisation,
    cascade_layers,
    randomise_layer,
)


def test_the_cascade_runs_head_first(tiny_vgg: nn.Module) -> None:
    layers = cascade_layers(tiny_vgg)
    assert layers[:3] == ["classifier.3", "classifier.0", "features.13"]
    assert layers[-1] == "features.0" and len(layers) == 10  # 4 conv + 4 BN + 2 linear


@pytest.mark.slow
def test_mprt_equals_a_hand_made_cascade_and_leaves_the_model(tiny_vgg: nn.Module,
                                                               images: Tensor) -> None:
    x = images[:2]
    before = {k: v.clone() for k, v in tiny_vgg.state_dict().items()}
    t1 = explain(tiny_vgg, x, "gradcam", "features.8", topk=1).targets
    layers = cascade_layers(tiny_vgg)[:3]
    metric = ParameterRandomisation(("gradcam",), layers, ("original", "weighted"), seed=3,
                                    explain_layer="features.8")
    metric.update(tiny_vgg, x, t1)
    for k, v in tiny_vgg.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit-identical
    values = metric.compute()
    net = copy.deepcopy(tiny_vgg)
    modules = dict(net.named_modules())
    trained = explain(tiny_vgg, x, "gradcam", "features.8", targets=t1,
                      contrasts=("original", "weighted"))
    for step, name in enumerate(layers, start=1):
        randomise_layer(modules[name], torch.Generator().manual_seed((3 << 16) + step - 1))
        now = explain(net, x, "gradcam", "features.8", targets=t1,
                      contrasts=("original", "weighted"))
        for c in ("original", "weighted"):
            a = figure_normalise(trained.maps[c][:, 0], (32, 32))
            b = figure_normalise(now.maps[c][:, 0], (32, 32))
            key = f"gradcam/{c}/{step:02d}_{name}"
            assert float(values[f"eval/mprt_spearman/{key}"]) == pytest.approx(
                float(spearman(a, b).mean()), abs=1e-6)
            assert float(values[f"eval/mprt_ssim/{key}"]) == pytest.approx(
                float(ssim(a, b).mean()), abs=1e-6)
    # the head's new weights change the map of a class: below 1 once the head is random
    assert float(values["eval/mprt_spearman/gradcam/original/01_classifier.3"]) < 0.99


def test_the_step_runs_mprt_on_the_first_samples(tiny_vgg: nn.Module, images: Tensor) -> None:
    step = EvaluationStep(
        methods=("gradcam",), layer="features.8", topk=2, contrasts=("original", "weighted"),
        baselines=("zeros",), modes=("pos",), maskings=("threshold",), threshold=None,
        max_batch=64, gradient_sign=False, steps=(1,), eps=1e-3, memory_budget=None,
        localization=False, mean=(0.0,) * 3, std=(1.0,) * 3, mprt_samples=2,
        mprt_layers=("classifier.3", "features.13"))
    before = {k: v.clone() for k, v in tiny_vgg.state_dict().items()}
    labels = torch.zeros(4, dtype=torch.long)
    step.update(tiny_vgg, images[:2], labels[:2], indices=[3, 1])  # only index 1 is kept
    step.update(tiny_vgg, images[2:], labels[2:], indices=[0, 2])  # index 0
    step.finish(tiny_vgg)
    for k, v in tiny_vgg.state_dict().items():
        assert torch.equal(v, before[k]), k  # the trained weights, bit-identical
    assert float(step.mprt.count) == 2
    values = step.compute()
    assert len([k for k in values if k.startswith("eval/mprt_")]) == 2 * 2 * 2
    metric = ParameterRandomisation(("gradcam",), ("classifier.3", "features.13"),
                                    ("original", "weighted"), explain_layer="features.8")
    x = torch.stack([images[1], images[2]])
    metric.update(tiny_vgg, x, explain(tiny_vgg, x, "gradcam", "features.8").targets)
    for k, v in metric.compute().items():
        assert values[k] == pytest.approx(float(v), abs=1e-6), k
