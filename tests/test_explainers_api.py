"""explain(): stability, no side effects, one forward + one backward, shapes, clear errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from explainers import CONTRASTS, METHODS, Explanation, explain, explain_rows
from explainers.hooks import capture
from explainers.memory import graph_bytes_per_input, saved_tensor_bytes


class Margin(nn.Module):
    """Adds ``margin`` to logit 0, so p_0 rounds to exactly 1.0 in float32."""

    def __init__(self, net: nn.Module, margin: float) -> None:
        super().__init__()
        self.net = net
        self.margin = margin

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(x)
        return y + self.margin * (torch.arange(y.shape[1], device=y.device) == 0)


@pytest.mark.parametrize(("layer", "method"), [("net.features.12", "gradcam"),
                                               ("net.features.12", "gradcam++"),
                                               (None, "gradient")])
def test_stable_when_p_t_is_one(tiny_vgg: nn.Module, images: Tensor, layer: str | None,
                                method: str) -> None:
    model = Margin(tiny_vgg, 60.0)
    res = explain(model, images, method=method, layer=layer, topk=2)
    assert torch.equal(res.probs[:, 0], torch.ones(4))  # the naive p_s / (1 - p_t) is 0 / 0 here
    res64 = explain(copy.deepcopy(model).double(), images.double(), method=method, layer=layer,
                    topk=2)
    assert torch.equal(res.targets, res64.targets)
    for c in CONTRASTS:
        assert torch.isfinite(res.maps[c]).all()
        if method != "gradcam++":  # its p_t gradient is ~1e-26 and squares underflow in float32
            scale = res64.maps[c].abs().amax()
            torch.testing.assert_close(res.maps[c].double(), res64.maps[c],
                                       rtol=1e-4, atol=1e-5 * float(scale))


def test_no_side_effects(tiny_vgg: nn.Module, images: Tensor) -> None:
    before = copy.deepcopy(tiny_vgg.state_dict())
    for training in (False, True):
        tiny_vgg.train(training)
        explain(tiny_vgg, images, method="gradcam", layer="features.12", topk=2)
        explain(tiny_vgg, images, method="gradient", topk=1)
        assert tiny_vgg.training is training
        assert all(m.training is training for m in tiny_vgg.modules())
    tiny_vgg.eval()
    assert all(p.grad is None for p in tiny_vgg.parameters())
    after = tiny_vgg.state_dict()
    # running BN statistics would move if a call had run in train mode and touched them
    for name, value in before.items():
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(value, after[name]), name
    assert not any(m._forward_hooks for m in tiny_vgg.modules())


def test_hooks_removed_when_forward_raises(tiny_vgg: nn.Module, images: Tensor) -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_vgg

        def forward(self, x: Tensor) -> Tensor:
            self.net.features(x)
            raise RuntimeError("boom after the hooked layer")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        explain(model, images, method="gradcam", layer="net.features.12")
    assert not any(m._forward_hooks for m in model.modules())


def test_one_forward_and_one_backward(tiny_vgg: nn.Module, images: Tensor,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One forward; at a hooked layer one batched backward for all rows; in input space (the
    whole network) one backward per row over the same graph, measured faster than vmap's."""
    calls: dict[str, object] = {"forward": 0, "rows": []}
    real_grad = torch.autograd.grad

    def counting_grad(*args: object, **kwargs: object) -> tuple[Tensor, ...]:
        (rows,) = args[2]
        batched = kwargs.get("is_grads_batched", False)
        calls["rows"].append(rows.shape[0] if batched else 1)
        return real_grad(*args, **kwargs)

    def count_forward(_m: nn.Module, _i: object) -> None:
        calls["forward"] += 1

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    handle = tiny_vgg.register_forward_pre_hook(count_forward)
    for method, layer, rows in (("gradcam++", "features.12", [12]),
                                ("integrated_gradients", None, [1] * 12),
                                ("gradient", None, [1] * 12)):
        calls.update(forward=0, rows=[])
        explain(tiny_vgg, images, method=method, layer=layer, topk=3, steps=4)
        assert calls == {"forward": 1, "rows": rows}, method  # 3 targets x 4 contrasts
    handle.remove()


def test_targets_batch_of_one_subsets(tiny_resnet: nn.Module, images: Tensor) -> None:
    top = explain(tiny_resnet, images, method="xgradcam", layer="layer3", topk=3)
    assert isinstance(top, Explanation)
    assert top.targets.shape == (4, 3) and top.logits.shape == (4, 10)
    torch.testing.assert_close(top.probs, top.logits.softmax(dim=1))
    assert not top.logits.requires_grad and not top.maps["weighted"].requires_grad
    # explicit [B, k] targets, reversed order: same maps, reordered
    rev = explain(tiny_resnet, images, method="xgradcam", layer="layer3",
                  targets=top.targets.flip(1))
    for c in CONTRASTS:
        torch.testing.assert_close(rev.maps[c], top.maps[c].flip(1), rtol=1e-5, atol=1e-7)
    # [B] targets, a batch of one, a subset of contrasts
    one = explain(tiny_resnet, images[2:3], method="xgradcam", layer="layer3",
                  targets=top.targets[2:3, 1], contrasts=("max", "weighted"))
    assert set(one.maps) == {"max", "weighted"} and one.maps["max"].shape == (1, 1, 4, 4)
    for c in ("max", "weighted"):
        torch.testing.assert_close(one.maps[c][0, 0], top.maps[c][2, 1], rtol=1e-4, atol=1e-6)


def test_every_method_shapes_and_dtype(tiny_vgg: nn.Module, images64: Tensor) -> None:
    model = tiny_vgg.double()
    x = images64.double()
    for name, spec in METHODS.items():
        layer = None if spec.input_space else "features.12"
        res = explain(model, x, method=name, layer=layer, topk=2, steps=2)
        shape = (3, 2, 3, 64, 64) if spec.input_space else (3, 2, 8, 8)
        shape = (3, 2, 64, 64) if name == "fullgrad" else shape  # summed over channels
        for c in CONTRASTS:
            assert res.maps[c].shape == shape and res.maps[c].dtype == torch.float64, name
            assert torch.isfinite(res.maps[c]).all()


def test_errors(tiny_vgg: nn.Module, images: Tensor) -> None:
    with pytest.raises(ValueError, match=r"unknown layer 'features\.99'.*'features\.12'"):
        explain(tiny_vgg, images, layer="features.99")
    with pytest.raises(ValueError, match="topk=11 must be between 1 and the class count 10"):
        explain(tiny_vgg, images, layer="features.12", topk=11)
    with torch.inference_mode():
        frozen = images.clone()
    with pytest.raises(RuntimeError, match=r"Trainer\(inference_mode=False\)"):
        explain(tiny_vgg, frozen, layer="features.12")
    with pytest.raises(ValueError, match="unknown method 'gradcamm'"):
        explain(tiny_vgg, images, method="gradcamm", layer="features.12")
    with pytest.raises(ValueError, match="unknown contrasts"):
        explain(tiny_vgg, images, layer="features.12", contrasts=("weigthed",))
    with pytest.raises(ValueError, match="pass layer=None"):
        explain(tiny_vgg, images, method="gradient", layer="features.12")
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 10\)"):
        explain(tiny_vgg, images, layer="features.12", targets=torch.tensor([0, 1, 2, 10]))

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_vgg
            self.spare = nn.Linear(2, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.net(x)

    with pytest.raises(RuntimeError, match="'spare' was never reached"):
        explain(Unused(), images, layer="spare")


def test_tokens_reshape_needs_square_grid(tiny_vgg: nn.Module, images: Tensor) -> None:
    # features.12 output [B, 32, 4, 4] read as tokens: N = 4 -> 3 patch tokens, not square
    with pytest.raises(ValueError, match="square grid"):
        explain(tiny_vgg, images, layer="features.12", reshape="tokens")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tiny_vgg: nn.Module, images: Tensor) -> None:
    cpu = explain(tiny_vgg, images, method="gradcam", layer="features.12", topk=2)
    gpu = explain(tiny_vgg.cuda(), images.cuda(), method="gradcam", layer="features.12", topk=2)
    for c in CONTRASTS:
        assert gpu.maps[c].device.type == "cuda"
        torch.testing.assert_close(gpu.maps[c].cpu(), cpu.maps[c], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(("method", "layer"), [("gradient", None), ("gradcam", "features.12"),
                                               ("gradcam++", "features.12")])
def test_explain_rows_equals_explain_per_input(tiny_vgg: nn.Module, images: Tensor, method: str,
                                               layer: str | None) -> None:
    """Each input with its own contrast(s): the maps explain() gives that input alone."""
    targets = torch.tensor([3, 0, 7, 3])
    which = torch.tensor([1, 3, 0, 2])  # weighted, max, original, mean
    maps, logits = explain_rows(tiny_vgg, images, targets, which, CONTRASTS, method=method,
                                layer=layer, check_targets=True)
    every, _ = explain_rows(tiny_vgg, images, targets, torch.arange(4)[:, None].expand(4, 4),
                            CONTRASTS, method=method, layer=layer)
    for i in range(4):
        name = CONTRASTS[int(which[i])]
        one = explain(tiny_vgg, images[i:i + 1], method=method, layer=layer,
                      targets=targets[i:i + 1], contrasts=(name,))
        torch.testing.assert_close(maps[i], one.maps[name][0, 0], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(logits[i], one.logits[0], rtol=1e-6, atol=1e-6)
        for c, name_c in enumerate(CONTRASTS):
            ref = explain(tiny_vgg, images[i:i + 1], method=method, layer=layer,
                          targets=targets[i:i + 1], contrasts=(name_c,))
            torch.testing.assert_close(every[c, i], ref.maps[name_c][0, 0], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 10\)"):
        explain_rows(tiny_vgg, images, targets + 7, which, CONTRASTS, check_targets=True)
    with pytest.raises(ValueError, match="which"):
        explain_rows(tiny_vgg, images, targets, which[:3], CONTRASTS)


def test_forward_saves_nothing_for_weight_gradients(tiny_vgg: nn.Module) -> None:
    """The explain forward keeps no graph for parameter gradients (nor before the hooked layer).

    Saved-tensor bytes per image of a plain forward with the parameters requiring grad, against the
    engine's forward: at the hooked last conv of a 64 px tiny_vgg the graph is a few percent of the
    plain one (VGG-16-BN at 224 px, features.40: 121.6 -> 1.1 MiB per image).
    """
    x = torch.randn(1, 3, 64, 64)
    frozen, _ = graph_bytes_per_input(tiny_vgg, x, "features.12")

    def plain(n: int) -> int:
        def forward() -> Tensor:
            with capture(tiny_vgg, "features.12"):
                return tiny_vgg(x.expand(n, -1, -1, -1))
        return sum(saved_tensor_bytes(forward)[1])

    assert all(p.requires_grad for p in tiny_vgg.parameters())
    per_image_plain = plain(2) - plain(1)
    assert 0 < frozen < 0.05 * per_image_plain
    # what remains after features.12: BN input, ReLU output, pool, the classifier's activations
    assert frozen >= 2 * 32 * 8 * 8 * 4


def test_model_untouched_even_when_forward_raises(tiny_vgg: nn.Module, images: Tensor) -> None:
    params = dict(tiny_vgg.named_parameters())
    calls = {"n": 0}

    def boom(_m: nn.Module, _i: object, _o: Tensor) -> None:
        calls["n"] += 1
        raise RuntimeError("boom inside the classifier")

    handle = tiny_vgg.classifier.register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        explain(tiny_vgg, images, method="gradcam", layer="features.12")
    handle.remove()
    assert calls["n"] == 1
    after = dict(tiny_vgg.named_parameters())
    assert after.keys() == params.keys()
    for name, p in after.items():
        assert p is params[name] and isinstance(p, nn.Parameter), name
        assert p.requires_grad and p.grad is None, name
    assert not tiny_vgg.training
    assert not any(m._forward_hooks for m in tiny_vgg.modules())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_give_float32_maps(tiny_vgg: nn.Module, images: Tensor,
                                                 dtype: torch.dtype) -> None:
    """bf16 / fp16 weights ("true" precision): inputs cast on entry, rows and maps in float32."""
    ref = explain(tiny_vgg, images, method="gradcam", layer="features.12", topk=2)
    half = copy.deepcopy(tiny_vgg).to(dtype)
    for x in (images, images.to(dtype)):  # a float32 batch or one Lightning already converted
        res = explain(half, x, method="gradcam", layer="features.12", topk=2)
        assert res.logits.dtype == torch.float32
        assert torch.equal(res.targets, ref.targets)
        for c in CONTRASTS:
            assert res.maps[c].dtype == torch.float32
            scale = float(ref.maps[c].abs().amax())
            torch.testing.assert_close(res.maps[c], ref.maps[c], rtol=0, atol=0.05 * scale)
    grads, _ = explain_rows(half, images, ref.targets[:, 0], torch.zeros(4, dtype=torch.long),
                            CONTRASTS)
    assert grads.dtype == torch.float32 and grads.shape == images.shape


def test_fp16_autocast_scales_rows_so_gradcam_pp_keeps_its_weighted_map(
    tiny_vgg: nn.Module, images: Tensor
) -> None:
    """gradcam++'s weighted row p_t (e_t - p) is tiny for a confident model. Rows built from fp16
    logits gave 56 % error (before the rows were scaled); float32 rows cast to fp16 in the
    backward still 10 %; rows scaled to ~1 by a power of two 3 %, the error every method has
    under fp16 autocast here."""
    model = Margin(tiny_vgg, 12.0)  # p_t2 ~ 1e-5: the row's entries are ~1e-5
    ref = explain(model, images, method="gradcam++", layer="net.features.12", topk=2)
    with torch.autocast("cpu", dtype=torch.float16):
        amp = explain(model, images, method="gradcam++", layer="net.features.12", topk=2)
    assert torch.equal(amp.targets, ref.targets)
    for c in CONTRASTS:
        assert amp.maps[c].dtype == torch.float32
        err = (amp.maps[c] - ref.maps[c]).norm() / ref.maps[c].norm()
        assert err < 0.05, (c, float(err))
