"""What a holder puts into a partition's reduce, and how one chunk is averaged from it.

Part of ``AGGREGATION=reduce`` (:mod:`splitnet.node.reduce`): pure functions over tensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from splitnet.learning.chunks import reduce_chunk
from splitnet.learning.keys import StateKey
from splitnet.learning.secagg import unmask_sum
from splitnet.node.secagg import SecureAggregation

__all__ = ["average_chunk", "contributions"]

Tensors = dict[str, torch.Tensor]


def contributions(states: Mapping[str, torch.Tensor], mine: list[int],
             secagg: SecureAggregation | None, weights: Mapping[int, int],
             round_: int) -> dict[int, dict[str, Tensors]]:
    """Return what this client contributes to each partition, by key prefix.

    Plain: every replica it holds (``owner/partition/``). Secure: its one masked weighted sum
    (``partition/``, Note: masked chunks).
    """
    sources: dict[int, dict[str, Tensors]] = {p: {} for p in mine}
    if secagg is not None:
        masked, _ = secagg.payload(states, weights, round_)
        for text, tensor in masked.items():
            partition, name = text.split("/", 1)
            sources[int(partition)].setdefault(f"{partition}/", {})[name] = tensor
        return sources
    for text, tensor in states.items():
        key = StateKey.parse(text)
        sources[key.partition].setdefault(f"{key.owner}/{key.partition}/", {})[key.name] = tensor
    return sources


def average_chunk(parts: Mapping[str, Tensors], weights: Mapping[int, int],
                   dtypes: Mapping[str, torch.dtype], secure: bool) -> Tensors:
    """Average one chunk from its parts (keyed ``sender:prefix``): replicas, or masked sums."""
    if secure:  # the masks of every pair of holders cancel in the sum (modulo 2^64)
        return unmask_sum(parts.values(), float(sum(weights.values())), dtypes)
    replicas = {int(key.split(":", 1)[1].split("/", 1)[0]): tensors
                for key, tensors in parts.items()}
    return reduce_chunk(replicas, {o: float(n) for o, n in weights.items()})
