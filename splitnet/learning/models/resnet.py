"""ResNet18 (10 partitions) and ResNet50 (18 partitions), written by hand.

Partitions: the stem, one per residual block (8 basic or 16 bottleneck blocks), then pool +
classifier. ``stem="cifar"`` (3x3 conv, no max-pool) suits 32x32 inputs; ``stem="imagenet"``
(7x7/2 conv + max-pool) gives the published architecture, whose parameter counts a test checks
(11,689,512 and 25,557,032 with 1000 classes). torchvision is not used: its wheels do not load
beside the pinned CPU torch.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "resnet_partitions"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = _downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    """1x1 → 3x3 → 1x1 convolutions with a residual connection (stride on the 3x3)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = _downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False),
                         nn.BatchNorm2d(outplanes))


_LAYOUT: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    "RESNET18": (BasicBlock, (2, 2, 2, 2)),
    "RESNET50": (Bottleneck, (3, 4, 6, 3)),
}


def resnet_partitions(model: str, shape: tuple[int, ...], num_classes: int,
                      stem: str | None = None) -> list[nn.Module]:
    """Return the stem, each residual block, and pool + classifier as separate partitions."""
    block: type[BasicBlock] | type[Bottleneck]
    block, counts = _LAYOUT[model]
    channels, height, _ = shape
    stem = stem or ("imagenet" if height >= 128 else "cifar")
    if stem == "imagenet":
        first: nn.Module = nn.Sequential(
            nn.Conv2d(channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1))
    else:
        first = nn.Sequential(nn.Conv2d(channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                              nn.ReLU())
    parts: list[nn.Module] = [first]
    inplanes = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            parts.append(block(inplanes, planes, stride))
            inplanes = planes * block.expansion
    parts.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                               nn.Linear(inplanes, num_classes)))
    for module in parts:
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return parts
