"""The optimizer ``OPTIMIZER`` names, shared by segments, the baseline and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["make_optimizer"]


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Return the optimizer ``OPTIMIZER`` names (SGD unless ADAM or ADAMW)."""
    if name == "ADAM":
        return torch.optim.Adam(params, lr=lr)
    if name == "ADAMW":
        return torch.optim.AdamW(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)
