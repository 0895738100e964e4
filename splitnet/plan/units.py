"""Units: what travels as one activation or gradient when a batch is cut into micro-batches.

With ``MICRO_BATCHES=m`` an owner's batch ``b`` is cut into ``c = min(m, len(batch))``
micro-batches of nearly equal size (GPipe). Each travels the pipeline as a *unit* with its own
number on the wire (a message's ``batch`` field): units ``b·m, b·m+1, …`` and the batch's last
unit always ``b·m + m - 1``, so a runner knows a batch's last unit when it sees it without being
told ``c`` (a short last batch of an epoch has fewer units). With ``m = 1`` a unit is a batch and
its number is the batch number: the wire is what it was before micro-batches.
"""

from __future__ import annotations

import itertools

__all__ = ["batch_of", "is_last", "micro_slices", "unit_ids"]


def micro_slices(size: int, m: int) -> list[slice]:
    """Return the micro-batches of a batch of ``size`` samples: ``min(m, size)`` slices."""
    count = min(m, size)
    base, extra = divmod(size, count)
    bounds = [0]
    for j in range(count):
        bounds.append(bounds[-1] + base + (1 if j < extra else 0))
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def unit_ids(batch: int, count: int, m: int) -> list[int]:
    """Return the wire numbers of ``batch``'s ``count`` units (the last one is ``b·m + m - 1``)."""
    if not 1 <= count <= m:
        raise ValueError(f"a batch has 1..{m} units, not {count}")
    return [batch * m + j for j in range(count - 1)] + [batch * m + m - 1]


def batch_of(unit: int, m: int) -> int:
    """Return the batch a unit belongs to."""
    return unit // m


def is_last(unit: int, m: int) -> bool:
    """Return whether ``unit`` is its batch's last unit (the one after which a runner steps)."""
    return unit % m == m - 1
