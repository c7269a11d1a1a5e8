"""The shared fixtures behave like the real backbones they stand in for."""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.tiny_nets import TinyResNet, TinyVGG


def test_tiny_vgg_shapes_and_inplace_relu(tiny_vgg: TinyVGG, images64: torch.Tensor) -> None:
    logits = tiny_vgg(images64)
    assert logits.shape == (3, 10)
    assert tiny_vgg.last_conv_name == "features.12"
    acts = {}
    handle = tiny_vgg.features[12].register_forward_hook(lambda m, i, o: acts.update(a=o.shape))
    tiny_vgg(images64)
    handle.remove()
    assert acts["a"] == (3, 32, 8, 8)
    # the hazard the explainers must survive: the conv output is overwritten by the ReLU
    assert tiny_vgg.features[14].inplace


def test_tiny_vgg_without_bn_has_no_batchnorm() -> None:
    net = TinyVGG(num_classes=5, width=4, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert net.last_conv_name == "features.9"
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


def test_tiny_resnet_layer3_resolution(tiny_resnet: TinyResNet, images64: torch.Tensor) -> None:
    out = {}
    handle = tiny_resnet.layer3.register_forward_hook(lambda m, i, o: out.update(a=o.shape))
    logits = tiny_resnet(images64)
    handle.remove()
    assert logits.shape == (3, 10)
    assert out["a"] == (3, 32, 8, 8)


def test_fixtures_are_seeded(images: torch.Tensor) -> None:
    again = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(images, again)
