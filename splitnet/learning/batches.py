"""Batch order: one seeded generator per owner and round, one permutation per epoch.

The runtime's owner feeder, the baseline and the pipelining benchmark cut an epoch the same way
(:func:`epoch_batches`); the feeder seeds each owner's round with :func:`owner_generator`, so a
run's batch order depends only on ``SEED``, the owner and the round.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["epoch_batches", "owner_generator"]


def owner_generator(seed: int, owner: int, round_: int) -> torch.Generator:
    """Return the generator of ``owner``'s batch order in ``round_`` (distinct per owner, round)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + owner * 7919 + round_)


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, *,
                  drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Yield one epoch's sample indices: a permutation of ``range(n)`` cut into batches.

    The permutation is drawn (``torch.randperm(n, generator=generator)``) when the first batch
    is asked for. The last batch is shorter when ``batch_size`` does not divide ``n``; with
    ``drop_last`` it is left out.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = torch.randperm(n, generator=generator)
    end = n - n % batch_size if drop_last else n
    for first in range(0, end, batch_size):
        yield order[first:first + batch_size]
