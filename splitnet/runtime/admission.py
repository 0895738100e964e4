"""Admission: what a peer's activation or gradient must be before it may wait in an inbox.

Every rule follows from the plan and the feeder's window (Note: batches in flight,
:mod:`splitnet.runtime.feeder`), so an input that breaks one can only come from a faulty or
hostile peer; it is refused with a ProtocolError and never runs. Batch numbers here are unit
numbers (:mod:`splitnet.plan.units`): the same thing unless ``MICRO_BATCHES`` > 1.

* The sender is the client that runs the step handing on to the task.
* Rounds: the current round, or the next one. A peer legitimately runs round r+1 before this
  client does: an owner that has loaded round r's model feeds its first batch of round r+1 while
  this client still waits for that model. Nothing further ahead is possible.
* Batches: an owner's batch numbers go on across rounds and every batch passes every one of its
  partitions, forward then backward. A forward input is the owner's latest batch that ran here
  (at another of its tasks) or the one after it — with ``PIPELINE_DEPTH=k``, a batch within
  ``k`` of it; a task never takes a batch it has already run.
  A gradient is for a batch whose forward this segment ran and has not yet backpropagated.
* Shapes: a forward input has the shape the previous partition gives (any batch size up to
  ``BATCH_SIZE``, the rest fixed, see :attr:`Replicas.outputs`); a gradient has exactly the shape
  of the segment's stashed output for that batch. Dtypes must match too.
"""

from __future__ import annotations

import torch

from splitnet.errors import ProtocolError
from splitnet.plan.plan import Plan
from splitnet.plan.segments import Run
from splitnet.plan.task import Task
from splitnet.plan.units import batch_of
from splitnet.runtime.replicas import Replicas
from splitnet.transport.messages import TaskMessage

__all__ = ["Admission"]


class Admission:
    """Checks client ``me``'s input against the plan and what has run here so far."""

    def __init__(self, plan: Plan, me: int, replicas: Replicas, runs: dict[Task, Run]) -> None:
        self.plan = plan
        self.me = me
        self.replicas = replicas
        self._runs = runs
        self._latest: dict[int, int] = {}  # owner -> its latest batch that ran here
        self._ran: dict[Task, int] = {}  # task -> the latest batch it ran

    def ran(self, task: Task, batch: int) -> None:
        """Record that ``task`` ran ``batch``."""
        self._ran[task] = batch
        self._latest[task.owner] = max(batch, self._latest.get(task.owner, -1))

    def restore(self, latest: dict[int, int]) -> None:
        """Continue from a checkpoint: each owner's latest batch that ran here, on every task."""
        for owner, batch in latest.items():
            self._latest[owner] = batch
            for task in self._runs:
                if task.owner == owner:
                    self._ran[task] = batch

    def latest(self) -> dict[int, int]:
        """Return each owner's latest batch that ran here (what a checkpoint keeps)."""
        return dict(self._latest)

    def stale(self, task: Task, batch: int) -> bool:
        """Return whether ``task`` has already run ``batch`` (or a later one)."""
        return batch <= self._ran.get(task, -1)

    def check(self, msg: TaskMessage, task: Task, round_: int) -> torch.Tensor:
        """Return the tensor if ``task`` may take ``msg`` in ``round_`` (else ProtocolError)."""
        p = self.plan.num_partitions
        run = self._runs[task]
        forward = msg.stage <= p
        before = run.first - 1 if forward else run.last + 1  # the partition that hands on
        sender = self.plan.runners[(msg.owner, before)]
        if msg.sender != sender:
            raise ProtocolError(f"task {task} takes its input from client {sender} (partition "
                                f"{before}), not from client {msg.sender}")
        allowed = (round_, round_ + 1) if forward else (round_,)
        if msg.round not in allowed:
            raise ProtocolError(f"task {task} batch {msg.batch}: message for round {msg.round} "
                                f"while client {self.me} is in round {round_}")
        if msg.tensor is None:
            raise ProtocolError(f"task {task} arrived without a tensor")
        if not msg.tensor.is_floating_point():
            raise ProtocolError(f"task {task} takes a floating-point tensor, got "
                                f"{msg.tensor.dtype}")
        if self.stale(task, msg.batch):
            raise ProtocolError(f"task {task} batch {msg.batch} already ran here")
        if forward:
            shape, dtype = self.replicas.outputs[before]
            size = self.plan.training.batch_size
            ok = (msg.tensor.dim() == len(shape) + 1 and tuple(msg.tensor.shape[1:]) == shape
                  and 1 <= msg.tensor.shape[0] <= size)
            expected = f"(1..{size}, {', '.join(map(str, shape))})"
        else:
            stashed = self.replicas.segment_for(msg.owner, run.last).stashed(msg.batch)
            if stashed is None:
                raise ProtocolError(f"task {task} batch {msg.batch}: no forward of that batch "
                                    f"waits for its gradient on client {self.me}")
            ok = msg.tensor.shape == stashed.shape
            expected, dtype = str(tuple(stashed.shape)), stashed.dtype
        if not ok or msg.tensor.dtype != dtype:
            raise ProtocolError(f"task {task} batch {msg.batch}: tensor of shape "
                                f"{tuple(msg.tensor.shape)} {msg.tensor.dtype}, expected "
                                f"{expected} {dtype}")
        latest = self._latest.get(msg.owner, -1)
        depth, micro = self.plan.training.pipeline_depth, self.plan.training.micro_batches
        newest = batch_of(latest, micro)
        if forward and not max(newest - depth + 1, 0) <= batch_of(msg.batch, micro) <= \
                newest + depth:
            raise ProtocolError(f"task {task} batch {msg.batch} is not owner {msg.owner}'s "
                                f"batch in flight (its latest batch here is {latest})")
        return msg.tensor
