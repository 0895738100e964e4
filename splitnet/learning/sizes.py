"""What a plan can put on the wire: each partition's output, its largest tensor, its bulk objects.

Note: expected shapes. What crosses a cut is fixed by the model and the dataset's input spec:
:func:`partition_outputs` gives each partition's per-sample output shape and dtype, found by
running the partitions (in eval mode, without gradients, so that no state or random generator
moves) on a dummy batch of two inputs.

Note: wire limits. :func:`wire_limits` bounds what a peer may send this client:

* ``tensor_bytes``: the largest activation (a partition's output) at ``BATCH_SIZE``; a gradient
  has its activation's shape and dtype, and labels never leave their owner. The bound is exact:
  a larger tensor could never be admitted, so it is refused from its header.
* ``bulk_bytes``: the largest safetensors object of the run, the averaged model or the biggest
  set of replica states one client holds, with a bound on the safetensors header (per tensor:
  its key, its shape and offsets) and a margin of ``BULK_MARGIN`` plus ``BULK_SLACK`` bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from splitnet.config.settings import TrainingSettings
from splitnet.learning.data import dataset_spec
from splitnet.learning.keys import StateKey
from splitnet.learning.models import InputSpec, build_partitions
from splitnet.plan.plan import Plan
from splitnet.plan.segments import runs_of

__all__ = ["BULK_MARGIN", "BULK_SLACK", "Output", "WireLimits", "largest_tensor_bytes",
           "partition_outputs", "safetensors_bound", "wire_limits"]

Output = tuple[tuple[int, ...], torch.dtype]
"""A partition's per-sample output shape and its dtype."""

BULK_MARGIN = 1 / 64
BULK_SLACK = 64 * 1024
_ENTRY_BYTES = 96  # per tensor in a safetensors header: quotes, dtype, the field names
_NUMBER_BYTES = 22  # one shape dimension or offset, with its comma


@dataclass(frozen=True)
class WireLimits:
    """The largest tensor and bulk object, in bytes, a peer may send (Note: wire limits)."""

    tensor_bytes: int
    bulk_bytes: int


def partition_outputs(parts: Sequence[nn.Module], spec: InputSpec) -> dict[int, Output]:
    """Return each partition's per-sample output shape and dtype (Note: expected shapes)."""
    if not parts:
        return {}
    if spec.vocab_size:
        x = torch.zeros((2, *spec.shape), dtype=torch.int64)
    else:
        x = torch.zeros((2, *spec.shape))
    outputs = {}
    with torch.no_grad():
        for p, part in enumerate(parts, 1):
            training = part.training
            part.eval()
            try:
                x = part(x)
            finally:
                part.train(training)
            outputs[p] = (tuple(x.shape[1:]), x.dtype)
    return outputs


def largest_tensor_bytes(outputs: dict[int, Output], batch_size: int) -> int:
    """Return the bytes of the largest partition output (or its gradient) at ``batch_size``."""
    return max((batch_size * math.prod(shape) * torch.empty((), dtype=dtype).element_size()
                for shape, dtype in outputs.values()), default=0)


def safetensors_bound(tensors: dict[str, torch.Tensor]) -> int:
    """Return an upper bound of ``tensors``' safetensors size: data plus a header bound."""
    data = sum(t.numel() * t.element_size() for t in tensors.values())
    header = 16 + sum(len(name.encode()) + _ENTRY_BYTES + _NUMBER_BYTES * (t.dim() + 2)
                      for name, t in tensors.items())
    return data + header


def _bulk_bytes(plan: Plan, parts: Sequence[nn.Module]) -> int:
    states = [part.state_dict() for part in parts]
    model = safetensors_bound({str(StateKey(None, p, name)): t
                               for p, state in enumerate(states, 1) for name, t in state.items()})
    largest = model
    for client in range(1, plan.training.num_clients + 1):
        held = {str(StateKey(run.owner, p, name)): t for run in runs_of(plan, client)
                for p in run.partitions for name, t in states[p - 1].items()}
        largest = max(largest, safetensors_bound(held))
        if plan.training.secure_aggregation:  # masked sums: one int64 tensor per partition
            masked = {str(StateKey(None, p, name)): t.to(torch.int64)
                      for run in runs_of(plan, client) for p in run.partitions
                      for name, t in states[p - 1].items()}
            largest = max(largest, safetensors_bound(masked))
    return largest + math.ceil(largest * BULK_MARGIN) + BULK_SLACK


def wire_limits(plan: Plan) -> WireLimits:
    """Return the largest tensor and bulk object of ``plan``'s run (Note: wire limits).

    Note: shapes without weights. The model is built and run on the ``meta`` device: shapes
    and dtypes only, no memory and no arithmetic (a BERT base takes milliseconds, not seconds
    and hundreds of MiB); published BERT weights are not read, as they change no shape.
    """
    s: TrainingSettings = plan.training
    spec = dataset_spec(s)
    with torch.device("meta"):
        parts = build_partitions(s.model, spec, s.seed, s.bert_model)
        outputs = partition_outputs(parts, spec)
    return WireLimits(largest_tensor_bytes(outputs, s.batch_size), _bulk_bytes(plan, parts))
