"""Seeded fixtures shared by every test: tiny nets, tiny images, a temporary output folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_modules.tiny_nets import TinyResNet, TinyVGG

NUM_CLASSES = 10


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same RNG state, whatever ran before it."""
    torch.manual_seed(0)


def _randomise_bn(model: torch.nn.Module) -> None:
    # Fresh BatchNorm layers are the identity in eval mode; random running statistics make the
    # tiny nets behave like trained ones (non-trivial BN in the backward pass).
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))


@pytest.fixture
def tiny_vgg() -> TinyVGG:
    """VGG-like net (``features`` / ``classifier``, in-place ReLUs), eval mode, 10 classes."""
    torch.manual_seed(0)
    model = TinyVGG(num_classes=NUM_CLASSES, width=8)
    _randomise_bn(model)
    return model.eval()


@pytest.fixture
def tiny_resnet() -> TinyResNet:
    """ResNet-like net (``layer1..3`` of BasicBlocks, ``fc``), eval mode, 10 classes."""
    torch.manual_seed(0)
    model = TinyResNet(num_classes=NUM_CLASSES, width=8)
    _randomise_bn(model)
    return model.eval()


@pytest.fixture
def images() -> torch.Tensor:
    """A batch of 4 normalised-looking images ``[4, 3, 32, 32]``."""
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def images64() -> torch.Tensor:
    """A batch of 3 images ``[3, 3, 64, 64]``."""
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A temporary output folder (created)."""
    path = tmp_path / "outputs"
    path.mkdir()
    return path
