"""A small CNN in 4 partitions: conv block, conv block, flatten + hidden linear, output linear."""

from __future__ import annotations

from torch import nn

__all__ = ["cnn_partitions"]


def cnn_partitions(shape: tuple[int, ...], num_classes: int) -> list[nn.Module]:
    """Return the 4 partitions for ``shape`` = (channels, height, width) inputs."""
    channels, height, width = shape
    # Two 2x2 poolings; inputs as small as 8x8 keep a 2x2 map.
    h, w = height // 4, width // 4
    return [
        nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Linear(64 * h * w, 128), nn.ReLU()),
        nn.Sequential(nn.Linear(128, num_classes)),
    ]
