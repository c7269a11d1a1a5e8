"""explain() against a brute-force reference: one backward per class, explicit sums over classes."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torchvision.models import VisionTransformer

from explainers import CONTRASTS, explain

OutputFn = Callable[[Tensor], Tensor]  # logits [B, C] -> one scalar per image [B]


def _no_inplace(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return model


def grad_of(model: nn.Module, x: Tensor, layer: str | None, fn: OutputFn) -> tuple[Tensor, Tensor]:
    """Plain reference: (activation, d sum_b fn(logits)_b / d activation), one backward.

    ``model`` must have no in-place ReLU (see ``_no_inplace``).
    """
    store: dict[str, Tensor] = {}
    if layer is None:
        inp = x.clone().requires_grad_(True)
        store["a"] = inp
        logits = model(inp)
    else:
        def hook(_m: nn.Module, _i: object, out: Tensor) -> None:
            out.retain_grad()
            store["a"] = out

        handle = dict(model.named_modules())[layer].register_forward_hook(hook)
        logits = model(x)
        handle.remove()
    fn(logits).sum().backward()
    return store["a"].detach(), store["a"].grad.detach()


def ref_gradcam(a: Tensor, g: Tensor) -> Tensor:
    w = g.mean(dim=(2, 3))
    return (w[:, :, None, None] * a).sum(dim=1)


def ref_linear_approx(a: Tensor, g: Tensor) -> Tensor:
    return (a * g).sum(dim=1)


def ref_xgradcam(a: Tensor, g: Tensor) -> Tensor:
    w = (g * a).sum(dim=(2, 3)) / (a.abs().sum(dim=(2, 3)) + 1e-7)
    return (w[:, :, None, None] * a).sum(dim=1)


def ref_gradcam_pp(a: Tensor, g: Tensor) -> Tensor:
    alpha = g**2 / (2 * g**2 + a.sum(dim=(2, 3), keepdim=True) * g**3 + 1e-7)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    w = (torch.relu(g) * alpha).sum(dim=(2, 3))
    return (w[:, :, None, None] * a).sum(dim=1)


REF = {
    "gradcam": ref_gradcam,
    "linear_approx": ref_linear_approx,
    "xgradcam": ref_xgradcam,
    "gradcam++": ref_gradcam_pp,
    "gradient": lambda x, g: g,
    "input_x_gradient": lambda x, g: x * g,
}


def reference_maps(model: nn.Module, x: Tensor, layer: str | None, method: str, k: int,
                   tokens: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
    """Targets [B, k] and contrast -> [B, k, ...] computed the slow, explicit way."""
    model = _no_inplace(model)
    with torch.no_grad():
        logits = model(x)
    n_cls = logits.shape[1]
    targets = logits.topk(k, dim=1).indices
    rule = REF[method]

    def phi(fn: OutputFn) -> Tensor:
        a, g = grad_of(model, x, layer, fn)
        if tokens:
            side = round((a.shape[1] - 1) ** 0.5)
            a = a[:, 1:].transpose(1, 2).reshape(a.shape[0], -1, side, side)
            g = g[:, 1:].transpose(1, 2).reshape(g.shape[0], -1, side, side)
        return rule(a, g)

    per_class = torch.stack([phi(lambda y, s=s: y[:, s]) for s in range(n_cls)])  # [C, B, ...]
    out: dict[str, list[Tensor]] = {c: [] for c in CONTRASTS}
    for b in range(x.shape[0]):
        for j in range(k):
            t = int(targets[b, j])
            others = [s for s in range(n_cls) if s != t]
            denom = sum(torch.exp(logits[b, s]) for s in others)
            rival = max(others, key=lambda s: float(logits[b, s]))
            if method == "gradcam++":  # not linear: the method on the contrast output's gradient
                def sel(fn: OutputFn, b: int = b) -> Tensor:
                    return phi(fn)[b]

                out["original"].append(per_class[t, b])
                out["weighted"].append(sel(lambda y, t=t: y.softmax(dim=1)[:, t]))
                out["mean"].append(sel(lambda y, t=t, o=others: y[:, t] - y[:, o].mean(dim=1)))
                out["max"].append(sel(lambda y, t=t, r=rival: y[:, t] - y[:, r]))
                continue
            weighted = per_class[t, b].clone()
            mean = per_class[t, b].clone()
            for s in others:
                weighted -= torch.exp(logits[b, s]) / denom * per_class[s, b]
                mean -= per_class[s, b] / (n_cls - 1)
            out["original"].append(per_class[t, b])
            out["weighted"].append(weighted)
            out["mean"].append(mean)
            out["max"].append(per_class[t, b] - per_class[rival, b])
    shape = (x.shape[0], k, *per_class.shape[2:])
    return targets, {c: torch.stack(v).reshape(shape) for c, v in out.items()}


CASES = [
    ("tiny_vgg", "features.12", "gradcam"),
    ("tiny_vgg", "features.12", "linear_approx"),
    ("tiny_vgg", "features.12", "xgradcam"),
    ("tiny_vgg", "features.12", "gradcam++"),
    ("tiny_resnet", "layer3", "gradcam"),
    ("tiny_vgg", None, "gradient"),
    ("tiny_resnet", None, "input_x_gradient"),
]


@pytest.mark.parametrize(("net", "layer", "method"), CASES)
def test_matches_brute_force(request: pytest.FixtureRequest, images: Tensor, net: str,
                             layer: str | None, method: str) -> None:
    model = request.getfixturevalue(net).double()
    x = images[:2].double()
    res = explain(model, x, method=method, layer=layer, topk=3)
    targets, ref = reference_maps(model, x, layer, method, k=3)
    assert torch.equal(res.targets, targets)
    for c in CONTRASTS:
        assert res.maps[c].shape == ref[c].shape
        torch.testing.assert_close(res.maps[c], ref[c], rtol=1e-8, atol=1e-10)
    # the contrasts differ from each other, so each comparison above tests its own formula
    assert not torch.allclose(res.maps["original"], res.maps["weighted"])


def test_float32_matches_reference(tiny_vgg: nn.Module, images: Tensor) -> None:
    res = explain(tiny_vgg, images, method="gradcam", layer="features.12", topk=2)
    _, ref = reference_maps(tiny_vgg, images, "features.12", "gradcam", k=2)
    for c in CONTRASTS:
        torch.testing.assert_close(res.maps[c], ref[c], rtol=1e-4, atol=1e-5)


def test_integrated_gradients_reference(tiny_vgg: nn.Module, images: Tensor) -> None:
    model = _no_inplace(tiny_vgg.double())
    x, steps = images[:2].double(), 3
    base = torch.full_like(x, 0.5)
    res = explain(model, x, method="integrated_gradients", topk=2, steps=steps, baseline=0.5)
    with torch.no_grad():
        logits = model(x)
    targets = logits.topk(2, dim=1).indices
    assert torch.equal(res.targets, targets)
    n_cls = logits.shape[1]
    points, ys, grads = [], [], []  # per path point: logits [B, C], per-class grads [C, B, ...]
    for i in range(1, steps + 1):
        point = base + i / steps * (x - base)
        with torch.no_grad():
            ys.append(model(point))
        grads.append([grad_of(model, point, None, lambda lg, s=s: lg[:, s])[1]
                      for s in range(n_cls)])
        points.append(point)
    for b in range(2):
        for j in range(2):
            t = int(targets[b, j])
            others = [s for s in range(n_cls) if s != t]
            rival = max(others, key=lambda s: float(logits[b, s]))
            total = {c: torch.zeros_like(x[b]) for c in CONTRASTS}
            for i in range(steps):
                y = ys[i][b]
                g = [grads[i][s][b] for s in range(n_cls)]
                denom = sum(torch.exp(y[s]) for s in others)
                total["original"] += g[t]
                total["weighted"] += g[t] - sum(torch.exp(y[s]) / denom * g[s] for s in others)
                total["mean"] += g[t] - sum(g[s] for s in others) / (n_cls - 1)
                total["max"] += g[t] - g[rival]
            for c in CONTRASTS:
                expected = (x[b] - base[b]) * total[c] / steps
                torch.testing.assert_close(res.maps[c][b, j], expected, rtol=1e-8, atol=1e-10)


def test_vit_tokens_gradcam() -> None:
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=16, mlp_dim=32, num_classes=10).double().eval()
    nn.init.normal_(vit.heads.head.weight)  # torchvision starts it at zero: every map 0
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    layer = "encoder.layers.encoder_layer_1.ln_1"  # the block's output reaches no logit
    res = explain(vit, x, method="gradcam", layer=layer, topk=2, reshape="tokens")
    assert res.maps["weighted"].abs().amax() > 0
    targets, ref = reference_maps(vit, x, layer, "gradcam", k=2, tokens=True)
    assert torch.equal(res.targets, targets)
    for c in CONTRASTS:
        assert res.maps[c].shape == (2, 2, 4, 4)
        torch.testing.assert_close(res.maps[c], ref[c], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("layer", "method"), [("features.12", "gradcam"),
                                               ("features.12", "linear_approx"),
                                               ("features.12", "xgradcam"),
                                               (None, "gradient"),
                                               (None, "input_x_gradient")])
def test_proposition_2(tiny_vgg: nn.Module, images: Tensor, layer: str | None,
                       method: str) -> None:
    """p_t (1 - p_t) * weighted == the method applied to the gradient of p_t."""
    model = tiny_vgg.double()
    x = images.double()
    res = explain(model, x, method=method, layer=layer, topk=2, contrasts=("weighted",))
    model = _no_inplace(model)
    p = res.probs.gather(1, res.targets)  # [B, k]
    for j in range(2):
        t = res.targets[:, j]
        a, g = grad_of(model, x, layer, lambda y, t=t: y.softmax(dim=1).gather(1, t[:, None])[:, 0])
        expected = REF[method](a, g)
        scale = (p[:, j] * (1 - p[:, j])).reshape(-1, *[1] * (expected.dim() - 1))
        torch.testing.assert_close(scale * res.maps["weighted"][:, j], expected,
                                   rtol=1e-8, atol=1e-12)


def test_inplace_relu_after_layer(tiny_vgg: nn.Module, images: Tensor) -> None:
    """features.13 (BatchNorm) is followed by ReLU(inplace=True): the hook's clone protects it."""
    plain = _no_inplace(tiny_vgg)
    assert isinstance(tiny_vgg.features[14], nn.ReLU) and tiny_vgg.features[14].inplace
    for method in ("gradcam", "linear_approx"):
        res = explain(tiny_vgg, images, method=method, layer="features.13", topk=2)
        ref = explain(plain, images, method=method, layer="features.13", topk=2)
        for c in CONTRASTS:
            torch.testing.assert_close(res.maps[c], ref.maps[c], rtol=0, atol=0)
    # capturing after the ReLU gives other maps, so the comparison above would see an overwrite
    pre = explain(plain, images, method="gradcam", layer="features.13", topk=2)
    post = explain(plain, images, method="gradcam", layer="features.14", topk=2)
    assert not torch.allclose(post.maps["original"], pre.maps["original"])
