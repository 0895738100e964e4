"""Domain messages that travel between clients (no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Blob", "TaskMessage"]


@dataclass
class TaskMessage:
    """An activation (forward) or gradient (backward) addressed to task ``owner_stage``."""

    owner: int
    stage: int
    batch: int
    round: int
    sender: int
    tensor: torch.Tensor


@dataclass
class Blob:
    """A bulk object: safetensors bytes plus JSON-able metadata."""

    kind: str
    round: int
    sender: int
    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)
