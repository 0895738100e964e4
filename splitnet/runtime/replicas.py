"""The replicas one client keeps: a segment for every run of partitions the plan gives it.

Weights leave and enter as flat dicts keyed by :class:`~splitnet.learning.keys.StateKey` strings:
:meth:`Replicas.states` gives every replica as ``"owner/partition/name"``, and
:meth:`Replicas.load_average` loads an averaged model (``"partition/name"``) into every copy of
each partition; :meth:`Replicas.check_model` first refuses a model whose keys, shapes or dtypes
are not exactly the model's, or whose weights are not finite.

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
from splitnet.learning.keys import StateKey, by_partition, flatten
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
                    optimizer, lr, _depth(plan, run.last), plan.training.micro_batches)
            for run in runs_of(plan, me)
        ]
        self._by_partition = {(seg.owner, p): seg for seg in self.segments for p in seg.modules}
        last = max((seg.first - 1 for seg in self.segments), default=0)
        # Note: expected shapes
        self.outputs = partition_outputs(parts[:last], dataset_spec(plan.training))
        self.model_spec = {key: (tuple(t.shape), t.dtype) for key, t in flatten(
            {p: part.state_dict() for p, part in enumerate(parts, 1)}).items()}

    def segment_for(self, owner: int, partition: int) -> Segment:
        """Return the segment that holds ``owner``'s ``partition`` (KeyError if not here)."""
        return self._by_partition[(owner, partition)]

    def states(self) -> dict[str, torch.Tensor]:
        """Return every replica's weights, keyed ``"owner/partition/name"``."""
        return {str(StateKey(seg.owner, p, name)): value for seg in self.segments
                for p in seg.modules for name, value in seg.state(p).items()}

    def check_model(self, model: Mapping[str, torch.Tensor]) -> None:
        """Raise ProtocolError unless ``model`` fits the model exactly and is finite.

        Exactly: the same keys, shapes and dtypes (checked before anything is loaded).
        """
        missing = sorted(self.model_spec.keys() - model.keys())
        extra = sorted(model.keys() - self.model_spec.keys())
        if missing or extra:
            raise ProtocolError(f"the model lacks {missing[:3]} and has extra {extra[:3]} "
                                f"({len(missing)} missing, {len(extra)} extra keys)")
        for key, (shape, dtype) in self.model_spec.items():
            tensor = model[key]
            if (tuple(tensor.shape), tensor.dtype) != (shape, dtype):
                raise ProtocolError(f"tensor {key} is {tuple(tensor.shape)} {tensor.dtype}, the "
                                    f"model's is {shape} {dtype}")
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ProtocolError(f"tensor {key} has non-finite weights")

    def load_average(self, averaged: Mapping[str, torch.Tensor]) -> None:
        """Load an averaged model (``"partition/name"``) into every copy of each partition."""
        parts = by_partition(averaged)
        for seg in self.segments:
            for p in seg.modules:
                if p not in parts:
                    raise ProtocolError(f"client {self.me}: the model has no partition {p}")
                seg.load(p, parts[p])


def _depth(plan: Plan, last: int) -> int:
    """Return the pipeline depth a segment ending at partition ``last`` keeps versions for.

    The owner's last segment runs each unit's forward, loss and backward in one step, in batch
    order, so it always works on the latest weights: exact, as with depth 1 (Note: weight
    stashing, in segment.py).
    """
    return 1 if last == plan.num_partitions else plan.training.pipeline_depth

