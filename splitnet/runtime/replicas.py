"""The replicas one client keeps: a segment for every run of partitions the plan gives it.

Weights leave and enter as flat dicts keyed by :class:`~splitnet.learning.keys.StateKey` strings:
:meth:`Replicas.states` gives every replica as ``"owner/partition/name"``, and
:meth:`Replicas.load_average` loads an averaged model (``"partition/name"``) into every copy of
each partition.

Note: expected shapes. What a segment may receive is fixed by the model and the dataset's input
spec: :attr:`Replicas.outputs` gives each partition's per-sample output shape and dtype
(:func:`~splitnet.learning.sizes.partition_outputs`), found once per client.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from splitnet.errors import ProtocolError
from splitnet.learning.data import dataset_spec
from splitnet.learning.keys import StateKey, by_partition
from splitnet.learning.sizes import Output, partition_outputs
from splitnet.plan.plan import Plan
from splitnet.plan.segments import runs_of
from splitnet.runtime.segment import Segment

__all__ = ["Output", "Replicas"]


class Replicas:
    """Client ``me``'s segments, each with its own copy of its partitions and its optimizer."""

    def __init__(self, plan: Plan, me: int, parts: Sequence[nn.Module], optimizer: str,
                 lr: float) -> None:
        self.me = me
        self.segments = [
            Segment(run.owner, run.first, [copy.deepcopy(parts[p - 1]) for p in run.partitions],
                    optimizer, lr)
            for run in runs_of(plan, me)
        ]
        self._by_partition = {(seg.owner, p): seg for seg in self.segments for p in seg.modules}
        last = max((seg.first - 1 for seg in self.segments), default=0)
        # Note: expected shapes
        self.outputs = partition_outputs(parts[:last], dataset_spec(plan.training))

    def segment_for(self, owner: int, partition: int) -> Segment:
        """Return the segment that holds ``owner``'s ``partition`` (KeyError if not here)."""
        return self._by_partition[(owner, partition)]

    def states(self) -> dict[str, torch.Tensor]:
        """Return every replica's weights, keyed ``"owner/partition/name"``."""
        return {str(StateKey(seg.owner, p, name)): value for seg in self.segments
                for p in seg.modules for name, value in seg.state(p).items()}

    def load_average(self, averaged: Mapping[str, torch.Tensor]) -> None:
        """Load an averaged model (``"partition/name"``) into every copy of each partition."""
        parts = by_partition(averaged)
        for seg in self.segments:
            for p in seg.modules:
                if p not in parts:
                    raise ProtocolError(f"client {self.me}: the model has no partition {p}")
                seg.load(p, parts[p])
