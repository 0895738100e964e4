"""Per-partition FedAvg: pure functions over ``(state_dict, weight)`` lists."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["check_consistent", "fedavg"]


def check_consistent(states: Sequence[tuple[dict[str, torch.Tensor], float]]) -> None:
    """Raise ValueError unless every state has the same keys, shapes and dtypes and weights > 0."""
    if not states:
        raise ValueError("nothing to average")
    first = states[0][0]
    for index, (state, weight) in enumerate(states):
        if weight <= 0:
            raise ValueError(f"state {index} has weight {weight}; weights must be positive")
        if state.keys() != first.keys():
            raise ValueError(f"state {index} has keys {sorted(state)} but state 0 has "
                             f"{sorted(first)}")
        for key, tensor in state.items():
            if tensor.shape != first[key].shape or tensor.dtype != first[key].dtype:
                raise ValueError(f"state {index}: {key} is {tuple(tensor.shape)} "
                                 f"{tensor.dtype}, state 0 has {tuple(first[key].shape)} "
                                 f"{first[key].dtype}")


def fedavg(states: Sequence[tuple[dict[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
    """Return the weighted average of ``states`` (integer buffers: rounded weighted mean)."""
    check_consistent(states)
    total = float(sum(weight for _, weight in states))
    averaged: dict[str, torch.Tensor] = {}
    for key, reference in states[0][0].items():
        acc = torch.zeros(reference.shape, dtype=torch.float64)
        for state, weight in states:
            acc += state[key].to(torch.float64) * (weight / total)
        averaged[key] = (acc.to(reference.dtype) if reference.is_floating_point()
                         else acc.round().to(reference.dtype))
    return averaged
