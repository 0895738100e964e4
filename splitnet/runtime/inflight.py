"""What is in flight on a client: queued units, and an owner's batches until they are done."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import torch

from splitnet.plan.units import micro_slices, unit_ids

__all__ = ["Pending", "Unit", "OwnerBatch"]


@dataclass
class Pending:
    """A unit's input waiting in a task's inbox (``batch`` is the unit's number on the wire)."""

    batch: int
    round: int
    tensor: torch.Tensor


Unit = tuple[int, slice]
"""A unit's number and its slice of the batch."""


@dataclass
class OwnerBatch:
    """An owner's batch in flight, kept on the owner, with its units' labels and shares.

    Its loss and its completion come once every unit is done (:mod:`splitnet.plan.units`).
    """

    labels: dict[int, torch.Tensor]
    shares: dict[int, float]
    done: asyncio.Future[float]
    left: int
    loss: float = 0.0

    @classmethod
    def of(cls, batch: int, labels: torch.Tensor, micro: int) -> tuple[OwnerBatch, list[Unit]]:
        """Cut ``batch`` into its units; return its entry and each unit's number and slice."""
        slices = micro_slices(len(labels), micro)
        units = list(zip(unit_ids(batch, len(slices), micro), slices, strict=True))
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        return cls({u: labels[part] for u, part in units},
                   {u: (part.stop - part.start) / len(labels) for u, part in units},
                   done, len(units)), units
