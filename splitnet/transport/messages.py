"""Domain messages that travel between clients (no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from splitnet.transport.codec import TensorMeta

__all__ = ["Blob", "TaskMessage"]


@dataclass
class TaskMessage:
    """An activation (forward) or gradient (backward) addressed to task ``owner_stage``.

    With ``torrent`` set, the tensor's bytes travel over BitTorrent: ``tensor`` is None until
    the receiver fetched them, and ``meta`` describes what to expect.
    """

    owner: int
    stage: int
    batch: int
    round: int
    sender: int
    tensor: torch.Tensor | None
    torrent: dict[str, Any] | None = None
    meta: TensorMeta | None = None


@dataclass
class Blob:
    """A bulk object: safetensors bytes plus JSON-able metadata."""

    kind: str
    round: int
    sender: int
    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)
