"""Small CNNs shaped like torchvision's VGG and ResNet, for tests and the CPU demo.

They keep torchvision's attribute names (``features`` / ``avgpool`` / ``classifier`` for VGG,
``conv1`` ... ``layer3`` / ``fc`` for ResNet) and its in-place ReLUs, so that layer names, head
replacement and the in-place hazards of the explainers are exercised exactly as on the real
backbones. Pure PyTorch: no Lightning import here.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock


class TinyVGG(nn.Module):
    """Four conv blocks (conv, [BN], in-place ReLU, max-pool except after the last).

    At 64 px the last conv (``features.12``) outputs ``[B, 4 * width, 8, 8]``; at 32 px ``4 x 4``.
    Like ``vgg16_bn.features[40]`` it is the raw conv output, before BatchNorm and ReLU.

    Args:
        num_classes: size of the last linear layer ``classifier[-1]``.
        width: channels of the first conv; later ones use 2x and 4x.
        batch_norm: insert ``BatchNorm2d`` after each conv (as ``vgg16_bn``).
    """

    def __init__(self, num_classes: int = 10, width: int = 16, batch_norm: bool = True) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.ReLU(inplace=True))
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Linear(4 * width * 4, 8 * width),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(8 * width, num_classes),
        )

    @property
    def last_conv_name(self) -> str:
        """Module name of the last ``Conv2d`` (the default explanation layer)."""
        names = [n for n, m in self.named_modules() if isinstance(m, nn.Conv2d)]
        return names[-1]

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> logits ``[B, num_classes]``."""
        x = self.features(x)
        x = self.avgpool(x).flatten(1)
        return self.classifier(x)


class TinyResNet(nn.Module):
    """A three-stage ResNet of torchvision ``BasicBlock``s (in-place ReLUs, identity shortcuts).

    At 64 px ``layer3`` outputs ``[B, 4 * width, 8, 8]`` (stride 8, no max-pool in the stem).
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._stage(width, width, stride=2)
        self.layer2 = self._stage(width, 2 * width, stride=2)
        self.layer3 = self._stage(2 * width, 4 * width, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    @staticmethod
    def _stage(inplanes: int, planes: int, stride: int) -> nn.Module:
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        return BasicBlock(inplanes, planes, stride=stride, downsample=downsample)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` -> logits ``[B, num_classes]``."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))
