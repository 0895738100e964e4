"""A client's replicas as checkpoint content: every segment's weights and optimizer state.

:func:`replicas_snapshot` returns named tensors and JSON-ready facts for
:class:`~splitnet.learning.checkpoints.CheckpointStore`; :func:`restore_replicas` loads them
into a client's fresh replicas of the same plan, bit for bit. Tensor names:
``weights/{owner}/{partition}/{name}`` and ``optimizer/{owner}/{first}/{param}/{name}`` (a
segment is named by its owner and its first partition).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from splitnet.learning.optimizer_state import flatten_optimizer, restore_optimizer
from splitnet.runtime.replicas import Replicas
from splitnet.runtime.segment import Segment

__all__ = ["WEIGHTS", "replicas_snapshot", "restore_replicas"]

WEIGHTS = "weights/"
_OPTIMIZER = "optimizer/"


def _segment_name(segment: Segment) -> str:
    return f"{segment.owner}/{segment.first}"


def replicas_snapshot(replicas: Replicas) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return every replica's weights and every segment's optimizer state (tensors, JSON)."""
    tensors = {WEIGHTS + key: value.contiguous() for key, value in replicas.states().items()}
    optimizers: dict[str, Any] = {}
    for segment in replicas.segments:
        name = _segment_name(segment)
        state, rest = flatten_optimizer(segment.optimizer, f"{_OPTIMIZER}{name}/")
        tensors.update(state)
        optimizers[name] = rest
    return tensors, {"optimizers": optimizers}


def restore_replicas(replicas: Replicas, tensors: Mapping[str, torch.Tensor],
                     extra: Mapping[str, Any]) -> None:
    """Load :func:`replicas_snapshot`'s content into ``replicas``; ValueError if it lacks some."""
    optimizers = extra.get("optimizers")
    if not isinstance(optimizers, dict):
        raise ValueError("the checkpoint holds no optimizer states")
    for segment in replicas.segments:
        name = _segment_name(segment)
        for p in segment.modules:
            prefix = f"{WEIGHTS}{segment.owner}/{p}/"
            state = {key[len(prefix):]: value for key, value in tensors.items()
                     if key.startswith(prefix)}
            if not state:
                raise ValueError(f"the checkpoint holds no weights of owner {segment.owner}'s "
                                 f"partition {p}")
            try:
                segment.load(p, state)
            except RuntimeError as exc:  # missing or unexpected names, other shapes
                raise ValueError(f"owner {segment.owner}'s partition {p}: "
                                 f"{str(exc).splitlines()[0]}") from None
        if name not in optimizers:
            raise ValueError(f"the checkpoint holds no optimizer of segment {name}")
        restore_optimizer(segment.optimizer, f"{_OPTIMIZER}{name}/", tensors, optimizers[name])
