"""Default explain layers reproduce the official hook; weights load without unpickling code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch import Tensor, nn

from callbacks.reseed import ReseedEachEpoch
from explainers import explain
from lightning_modules import BACKBONES, FineTuneClassifier, build_backbone
from lightning_modules.tiny_nets import TinyVGG

# --- default explain layers ------------------------------------------------------------------


def _hooked_output_version(net: nn.Module, layer: str, x: Tensor) -> tuple[int, int]:
    """Version counter of ``layer``'s output when hooked and after the whole forward pass.

    A hook that keeps the tensor without cloning (the official code) sees the activation it
    hooked only if nothing modifies that tensor in place later in the forward.
    """
    seen: dict[str, object] = {}

    def hook(_m: nn.Module, _i: object, out: Tensor) -> None:
        seen["out"], seen["version"] = out, out._version

    handle = net.get_submodule(layer).register_forward_hook(hook)
    try:
        net(x)
    finally:
        handle.remove()
    return seen["version"], seen["out"]._version  # type: ignore[return-value]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_default_layer_is_what_a_non_cloning_hook_explains(name: str) -> None:
    # Meta tensors track in-place writes like real ones, without the weight initialisation.
    size = 224 if name == "vit_b_16" else 64
    with torch.device("meta"):
        net = build_backbone(name, num_classes=5)
        x = torch.empty(1, 3, size, size)
    layer = BACKBONES[name].explain_layer
    at_hook, after = _hooked_output_version(net, layer, x)
    assert after == at_hook, f"{name}: {layer}'s output is overwritten later in the forward"
    names = [n for n, _ in net.named_modules()]
    if name in ("alexnet", "vgg16"):
        # The official hook layer (the last conv) is overwritten by the in-place ReLU, which is
        # therefore the layer the official maps are in effect computed at.
        conv = names[names.index(layer) - 1]
        assert isinstance(net.get_submodule(conv), nn.Conv2d)
        relu = net.get_submodule(layer)
        assert isinstance(relu, nn.ReLU) and relu.inplace
        at_hook, after = _hooked_output_version(net, conv, x)
        assert after > at_hook


class TinyAlexNet(nn.Module):
    """torchvision's AlexNet layout (the same ``features`` indices, in-place ReLUs), few channels.

    At 64 px ``features.10`` (last conv) and ``features.11`` (its in-place ReLU) are ``7 x 7``.
    """

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(3)
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(16 * 9, 32), nn.ReLU(inplace=True),
            nn.Dropout(), nn.Linear(32, 32), nn.ReLU(inplace=True), nn.Linear(32, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> logits ``[B, num_classes]``."""
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _official_maps(model: nn.Module, x: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """GradCAM / LA as the official ``get_saliency`` computes them at AlexNet ``features[10]``.

    The hook stores the module output itself (no clone); the in-place ReLU that follows then
    overwrites it and rebases its autograd history. Original maps differentiate y_t, weighted
    ones p_t (``softmax=True``), w.r.t. that stored tensor. The official LA averages over the
    channels, whynot sums (TorchRay's definition): the reference sums. The weighted maps are
    divided by p_t (1 - p_t), the factor by which explaining p_t differs from the weighted
    contrast (docs/protocol.md §1.4) and which whynot's ``weighted`` omits. Returns
    ``[B, k, h, w]`` maps.
    """
    stored: list[Tensor] = []
    handle = model.features[10].register_forward_hook(lambda _m, _i, out: stored.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    act = stored[0]
    probs = logits.softmax(dim=1)
    out: dict[str, list[Tensor]] = {f"{m}/{c}": [] for m in ("gradcam", "linear_approx")
                                    for c in ("original", "weighted")}
    for j in range(targets.shape[1]):
        t = targets[:, j : j + 1]
        p_t = probs.gather(1, t)[:, 0]
        for contrast, score in (("original", logits.gather(1, t)),
                                ("weighted", probs.gather(1, t))):
            (grad,) = torch.autograd.grad(score.sum(), act, retain_graph=True)
            if contrast == "weighted":
                grad = grad / (p_t * (1 - p_t))[:, None, None, None]
            gc = (grad.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1)
            out[f"gradcam/{contrast}"].append(gc.detach())
            out[f"linear_approx/{contrast}"].append((act * grad).sum(dim=1).detach())
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


def test_alexnet_default_layer_reproduces_official_hook() -> None:
    layer = BACKBONES["alexnet"].explain_layer
    with torch.device("meta"):
        real = build_backbone("alexnet", 6)
    tiny = TinyAlexNet().double().eval()
    kinds = [(type(m), getattr(m, "inplace", None)) for m in real.features]
    assert kinds == [(type(m), getattr(m, "inplace", None)) for m in tiny.features]
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    targets = tiny(x).topk(2, dim=1).indices
    reference = _official_maps(tiny, x, targets)
    for method in ("gradcam", "linear_approx"):
        ours = explain(tiny, x, method=method, layer=layer, targets=targets,
                       contrasts=("original", "weighted"))
        pre_relu = explain(tiny, x, method=method, layer="features.10", targets=targets,
                           contrasts=("original", "weighted"))
        for contrast in ("original", "weighted"):
            ref = reference[f"{method}/{contrast}"]
            scale = ref.abs().max()
            assert scale > 0
            err = (ours.maps[contrast] - ref).abs().max() / scale
            assert err < 1e-6, (method, contrast, float(err))
            pre_err = (pre_relu.maps[contrast] - ref).abs().max() / scale
            if method == "gradcam":
                # The pre-ReLU conv output (the previous default) is not what the paper measured.
                assert pre_err > 0.05, (method, contrast, float(pre_err))
            else:
                # LA is the same on both sides of a ReLU: x relu'(x) g = relu(x) g.
                assert pre_err < 1e-6, (method, contrast, float(pre_err))


# --- loading weights -------------------------------------------------------------------------


class _Payload:
    """A custom class: unpickling it means importing and running project code."""


def test_pickled_objects_are_refused_with_a_way_out(tmp_path: Path) -> None:
    state = TinyVGG(num_classes=4).state_dict()
    custom = tmp_path / "with_object.ckpt"
    torch.save({"state_dict": state, "extra": _Payload()}, custom)
    whole = tmp_path / "whole_module.pth"
    torch.save(TinyVGG(num_classes=4), whole)
    for path, culprit in ((custom, "_Payload"), (whole, "TinyVGG")):
        with pytest.raises(ValueError) as err:
            build_backbone("tiny_vgg", 4, pretrained=str(path))
        msg = str(err.value)
        assert str(path) in msg and culprit in msg
        assert "weights_only=True" in msg and "could run arbitrary code" in msg
        assert re.search(r"torch\.save\(obj\.state_dict\(\), 'weights\.pth'\)", msg)
    # The advice works: the classes the message names, allowed explicitly, convert the file.
    listed = str(err.value).split("pickled Python objects (", 1)[1].split(")", 1)[0]
    classes = [getattr(importlib.import_module(name.rpartition(".")[0]), name.rpartition(".")[2])
               for name in listed.split(", ")]
    assert TinyVGG in classes and torch.nn.Conv2d in classes
    converted = tmp_path / "weights.pth"
    with torch.serialization.safe_globals(classes):
        torch.save(torch.load(whole).state_dict(), converted)
    net = build_backbone("tiny_vgg", 4, pretrained=str(converted))
    assert torch.equal(net.features[0].weight,
                       torch.load(converted, weights_only=True)["features.0.weight"])


def test_state_dict_and_lightning_checkpoint_load_weights_only(tmp_path: Path) -> None:
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 4, (8,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    trainer = Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path,
                      callbacks=[ReseedEachEpoch(seed=3)])
    model = FineTuneClassifier("tiny_vgg", num_classes=4, scheduler="multistep")
    trainer.fit(model, loader)
    ckpt = tmp_path / "run.ckpt"
    trainer.save_checkpoint(ckpt)
    # Everything a train.py checkpoint holds (hparams, loops, optimizer, callback states)
    # loads without unpickling objects.
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert raw["hyper_parameters"]["backbone"] == "tiny_vgg"
    assert raw["callbacks"]["ReseedEachEpoch"] == {"seed": 3, "next_epoch": 1}
    net = build_backbone("tiny_vgg", 4, pretrained=str(ckpt))
    for k, v in net.state_dict().items():
        assert torch.equal(v, model.net.state_dict()[k]), k
    plain = tmp_path / "plain.pth"
    torch.save(model.net.state_dict(), plain)
    other_head = build_backbone("tiny_vgg", 7, pretrained=str(plain))
    assert torch.equal(other_head.features[0].weight, model.net.features[0].weight)
