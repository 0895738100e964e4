"""Per-partition FedAvg: pure functions over ``(state_dict, weight)`` lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from splitnet.learning.keys import StateKey, flatten

__all__ = ["average_replicas", "check_consistent", "fedavg"]


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


def average_replicas(states: Iterable[Mapping[str, torch.Tensor]],
                     weights: Mapping[int, float]) -> dict[str, torch.Tensor]:
    """Average every partition over its owners' replicas, weighted by ``weights[owner]``.

    ``states`` holds one dict per client keyed ``"owner/partition/name"``; the result is keyed
    ``"partition/name"``. Partitions are averaged in ascending order and, inside one, the owners'
    replicas are summed in ascending owner order, so the result does not depend on the order of
    ``states``. A replica that two clients both report, or an owner without a weight, is refused
    (ValueError).
    """
    replicas: dict[int, dict[int, dict[str, torch.Tensor]]] = {}
    source: dict[tuple[int, int], int] = {}
    for index, state in enumerate(states):
        for text, tensor in state.items():
            key = StateKey.parse(text)
            if key.owner is None:
                raise ValueError(f"state {index}: {text!r} is not a replica's key "
                                 "'{owner}/{partition}/{name}'")
            if source.setdefault((key.owner, key.partition), index) != index:
                raise ValueError(f"owner {key.owner}'s partition {key.partition} is in state "
                                 f"{source[(key.owner, key.partition)]} and in state {index}")
            replicas.setdefault(key.partition, {}).setdefault(key.owner, {})[key.name] = tensor
    missing = sorted({o for owners in replicas.values() for o in owners} - weights.keys())
    if missing:
        raise ValueError(f"no weight for owner(s) {missing}")
    averaged: dict[str, torch.Tensor] = {}
    for partition, owners in sorted(replicas.items()):
        average = fedavg([(state, weights[owner]) for owner, state in sorted(owners.items())])
        averaged.update(flatten({partition: average}))
    return averaged
