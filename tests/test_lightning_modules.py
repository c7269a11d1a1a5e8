"""Backbone factory, pretrained loading (local files only), FineTuneClassifier and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn

from lightning_modules import BACKBONES, FineTuneClassifier, build_backbone, hub_weights_path
from lightning_modules.tiny_nets import TinyVGG


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_head_and_explain_layer(name: str) -> None:
    spec = BACKBONES[name]
    # The meta device skips the weight initialisation (seconds for the large torchvision nets).
    with torch.device("meta"):
        net = build_backbone(name, num_classes=7)
    head = net.get_submodule(spec.head)
    assert isinstance(head, nn.Linear) and head.out_features == 7
    assert spec.explain_layer in dict(net.named_modules())
    assert (spec.explain_reshape == "tokens") == (name == "vit_b_16")


@pytest.mark.parametrize("name", ["tiny_vgg", "tiny_resnet"])
def test_tiny_backbone_forward(name: str) -> None:
    net = build_backbone(name, num_classes=7)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize(("name", "layer", "after"), [("vgg16_bn", "features.40", nn.BatchNorm2d),
                                                      ("vgg16", "features.29", nn.ReLU),
                                                      ("alexnet", "features.11", nn.ReLU)])
def test_vgg_and_alexnet_explain_last_conv(name: str, layer: str, after: type) -> None:
    # docs/protocol.md §1.6: the last conv layer as the official hook sees it; where an in-place
    # ReLU follows (VGG-16, AlexNet) that is the ReLU's output (tests/test_backbones.py checks
    # the rule).
    with torch.device("meta"):
        net = build_backbone(name, 3)
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    names = [n for n, _ in net.named_modules()]
    assert BACKBONES[name].explain_layer == layer
    assert names[names.index(convs[-1]) + (after is nn.ReLU)] == layer
    assert isinstance(net.get_submodule(names[names.index(convs[-1]) + 1]), after)


def test_unknown_backbone_lists_known() -> None:
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg19'.*tiny_vgg"):
        build_backbone("vgg19", 10)


def test_pretrained_local_file_skips_other_head(tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = TinyVGG(num_classes=10)
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    same = build_backbone("tiny_vgg", 10, pretrained=str(path))
    for (k, a), b in zip(src.state_dict().items(), same.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    other = build_backbone("tiny_vgg", 4, pretrained=str(path))
    assert torch.equal(other.features[0].weight, src.features[0].weight)
    assert other.classifier[3].weight.shape == (4, 64 * 2)


def test_pretrained_lightning_checkpoint(tmp_path: Path) -> None:
    model = FineTuneClassifier("tiny_vgg", num_classes=6)
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": model.state_dict()}, path)
    net = build_backbone("tiny_vgg", 6, pretrained=str(path))
    assert torch.equal(net.classifier[3].weight, model.net.classifier[3].weight)


def test_missing_pretrained_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        build_backbone("tiny_vgg", 10, pretrained=str(tmp_path / "nope.pth"))


def test_hub_weights_name_path_and_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    # TORCH_HOME, not torch.hub.set_dir: set_dir(old) would pin the hub folder for later tests
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a missing name would be downloaded
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, url = hub_weights_path("alexnet", "IMAGENET1K_V1")
    assert url.startswith("https://")
    assert path == tmp_path / "hub" / "checkpoints" / url.split("/")[-1]
    assert hub_weights_path("alexnet", "DEFAULT")[0] == path
    with pytest.raises(FileNotFoundError) as err:
        build_backbone("alexnet", 10, pretrained="IMAGENET1K_V1")
    assert str(path) in str(err.value) and url in str(err.value)
    with pytest.raises(ValueError, match="unknown weights 'IMAGENET9K'"):
        hub_weights_path("alexnet", "IMAGENET9K")


@pytest.mark.slow  # two AlexNets (3 s); the cache path and the URL cache are fast tests
def test_hub_weights_cached_file_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake hub cache holding a tiny file under the name torchvision would cache AlexNet under.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, _ = hub_weights_path("alexnet", "IMAGENET1K_V1")
    path.parent.mkdir(parents=True)
    src = build_backbone("alexnet", 1000)
    torch.save(src.state_dict(), path)
    net = build_backbone("alexnet", 3, pretrained="IMAGENET1K_V1")
    assert torch.equal(net.features[10].weight, src.features[10].weight)
    assert net.classifier[6].out_features == 3


def test_classifier_defaults_follow_paper() -> None:
    model = FineTuneClassifier("tiny_vgg", num_classes=10)
    assert (model.explain_layer, model.explain_reshape) == ("features.12", None)
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-3, 0.9, 5e-4)
    n_params = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_params == sum(p.numel() for p in model.parameters())  # all layers trained


def test_bad_scheduler_and_optimizer() -> None:
    with pytest.raises(ValueError, match="scheduler='poly'"):
        FineTuneClassifier("tiny_vgg", num_classes=10, scheduler="poly")
    with pytest.raises(ValueError, match="optimizer='adam'"):
        FineTuneClassifier("tiny_vgg", num_classes=10, optimizer="adam")


def test_accuracy_metrics_match_reference() -> None:
    model = FineTuneClassifier("tiny_vgg", num_classes=6)
    logits = torch.randn(12, 6)
    labels = torch.randint(0, 6, (12,))
    model.test_metrics.update(logits, labels)
    out = model.test_metrics.compute()
    top1 = (logits.argmax(1) == labels).float().mean()
    top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(1).float().mean()
    assert torch.allclose(out["test/acc"], top1) and torch.allclose(out["test/acc_top5"], top5)


def test_checkpoint_class_count_mismatch(tmp_path: Path) -> None:
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 4, (8,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    trainer = Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(FineTuneClassifier("tiny_vgg", num_classes=4), loader)
    ckpt = tmp_path / "four.ckpt"
    trainer.save_checkpoint(ckpt)
    loader10 = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    trainer2 = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                       enable_model_summary=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match=r"checkpoint .*four.ckpt has 4 classes.*have 10") as err:
        trainer2.validate(FineTuneClassifier("tiny_vgg", num_classes=10), loader10,
                          ckpt_path=str(ckpt))
    assert "four.ckpt" in str(err.value)
