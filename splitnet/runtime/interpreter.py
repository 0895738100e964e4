"""The runtime interprets the plan: it feeds segments from an inbox and hands results on.

One client's runtime keeps a segment (``splitnet.runtime.segment.Segment``) for every maximal
run of an owner's partitions it runs, an inbox per task, and one compute worker. Input arrives
only at a segment's ends: the forward of its first partition and the backward of its last.
Whenever tasks have input waiting, the worker runs the earliest of them in the client's list
(``splitnet.plan.schedule.pick``; Note: readiness scheduling). Results go to the runner of the next
stage through ``send`` (the network).

Note: loss chained. The forward of an owner's last segment runs on the owner, and so does the
loss (endpoint co-location): the loss and the segment's backward follow in the same step.

Note: inline compute. Handing a step to the compute thread and back costs ~0.1 ms, more than a
small partition's whole step. A task whose steps have taken under ``INLINE_SECONDS`` of CPU time
(a moving average) runs on the event loop instead, which yields between steps so that network
I/O goes on; a task is first run on the thread, so a large partition never blocks the loop.

Note: one batch in flight per owner. An owner feeds batch b+1 only when batch b has finished its
last backward stage, so every replica has applied batch b before it sees batch b+1: the result
equals plain SGD on the owner's model wherever the partitions run. Owners run concurrently.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from splitnet.errors import ProtocolError, RuntimeFailure
from splitnet.learning.data import OwnerData
from splitnet.plan.plan import Plan
from splitnet.plan.schedule import pick
from splitnet.plan.task import Task, partition_of
from splitnet.runtime.segment import Segment
from splitnet.telemetry.metrics import Metrics
from splitnet.telemetry.progress import Progress
from splitnet.transport.messages import TaskMessage

__all__ = ["OwnerStats", "TaskRunner"]

log = logging.getLogger("splitnet.runtime")
INLINE_SECONDS = 0.002
Send = Callable[[int, TaskMessage], Awaitable[None] | None]  # None: queued, nothing to await


@dataclass
class OwnerStats:
    """What one owner did in one round."""

    owner: int
    samples: int = 0
    batches: int = 0
    loss_sum: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the stats as JSON data."""
        return {"owner": self.owner, "samples": self.samples, "batches": self.batches,
                "loss_sum": self.loss_sum}


@dataclass
class _Pending:
    batch: int
    round: int
    tensor: torch.Tensor


class TaskRunner:
    """Runs one client's tasks for every owner it serves."""

    def __init__(self, plan: Plan, me: int, parts: list[nn.Module], send: Send,
                 metrics: Metrics | None = None) -> None:
        self.plan = plan
        self.metrics = metrics or Metrics(me)
        self.me = me
        self.order = plan.tasks_of(me)
        self._send = send
        self.segments = _segments(plan, me, parts)
        self._segment = {(seg.owner, p): seg for seg in self.segments for p in seg.modules}
        self.round = -1  # Note: no task before the initial model; start_round(0) opens round 0
        self.timeline: list[tuple[Any, ...]] = []
        self._inbox: dict[Task, deque[_Pending]] = defaultdict(deque)
        self._labels: dict[tuple[int, int], torch.Tensor] = {}
        self._done: dict[tuple[int, int], asyncio.Future[None]] = {}
        self._loss: dict[int, float] = defaultdict(float)
        self._next_batch: dict[int, int] = defaultdict(int)
        self._wake = asyncio.Event()
        self._cost: dict[Task, float] = {}  # moving average of each task's step, seconds
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"compute{me}")
        self._sending: set[asyncio.Task[None]] = set()
        self.failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.progress = Progress(f"owner {me}", plan.settings.num_rounds, plan.settings.num_epochs)

    def start_round(self, round_: int) -> None:
        """Enter ``round_``: queued messages of that round may now run."""
        self.round = round_
        self.metrics.round.labels(self.metrics.client).set(max(round_, 0))
        self._wake.set()

    # -- input -------------------------------------------------------------------------------

    def accept(self, msg: TaskMessage) -> None:
        """Validate a peer's activation/gradient and queue it (ProtocolError if it is wrong)."""
        p = self.plan.num_partitions
        task = Task(msg.owner, msg.stage)
        if msg.owner not in self.plan.owners or not 1 <= msg.stage <= 2 * p:
            raise ProtocolError(f"task {task} is not in the plan")
        if self.plan.runner_of(task) != self.me:
            raise ProtocolError(f"task {task} runs on client {self.plan.runner_of(task)}, "
                                f"not on client {self.me}")
        if msg.stage in (1, p + 1):
            raise ProtocolError(f"task {task} takes its input from its owner only")
        segment = self._segment[(msg.owner, partition_of(msg.stage, p))]
        if msg.stage != (segment.first if msg.stage <= p else 2 * p + 1 - segment.last):
            raise ProtocolError(f"task {task} is inside client {self.me}'s segment of owner "
                                f"{msg.owner}'s partitions {segment.first}-{segment.last}; input "
                                "arrives only at a segment's ends")
        if msg.round not in (self.round, self.round + 1):
            raise ProtocolError(f"message for round {msg.round} while client {self.me} is in "
                                f"round {self.round}")
        if msg.tensor is None:
            raise ProtocolError(f"task {task} arrived without a tensor")
        if not msg.tensor.is_floating_point():
            raise ProtocolError(f"task {task} takes a floating-point tensor, got "
                                f"{msg.tensor.dtype}")
        if any(item.batch == msg.batch for item in self._inbox[task]):
            raise ProtocolError(f"task {task} batch {msg.batch} arrived twice")
        self._deliver(task, _Pending(msg.batch, msg.round, msg.tensor))

    def _deliver(self, task: Task, item: _Pending) -> None:
        self._inbox[task].append(item)
        self._wake.set()

    # -- compute loop --------------------------------------------------------------------------

    async def compute_loop(self) -> None:
        """Run ready tasks forever, earliest in the client's list first."""
        loop = asyncio.get_running_loop()
        while True:
            ready = {t for t, q in self._inbox.items() if q and q[0].round == self.round}
            task = pick(ready, self.order)
            if task is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._inbox[task].popleft()
            m = self.metrics
            m.queue_depth.labels(m.client).set(sum(len(q) for q in self._inbox.values()))
            start = time.time()
            inline = self._cost.get(task, INLINE_SECONDS) < INLINE_SECONDS
            try:
                if inline:  # Note: inline compute
                    (stage, result), cpu = self._timed_compute(task, item)
                else:
                    (stage, result), cpu = await loop.run_in_executor(
                        self._pool, self._timed_compute, task, item)
            except Exception as exc:
                raise RuntimeFailure(self._step_failure(task, item, exc)) from exc
            end = time.time()
            self._cost[task] = 0.8 * self._cost.get(task, cpu) + 0.2 * cpu
            p = self.plan.num_partitions
            m.task_seconds.labels(m.client, str(task.owner), str(partition_of(task.stage, p)),
                                  "forward" if task.stage <= p else "backward").observe(end - start)
            self.timeline.append((self.me, task.owner, task.stage, item.batch, item.round,
                                  f"{start:.6f}", f"{end:.6f}", "compute", "", 0))
            self._hand_on(task, item, stage, result)
            if inline:
                await asyncio.sleep(0)  # let network I/O and the owners run between steps

    def _step_failure(self, task: Task, item: _Pending, exc: BaseException) -> str:
        # Note: failing step. Show the client's order with the failing task marked.
        order = " ".join(f">{t}<" if t == task else str(t) for t in self.order)
        return (f"client {self.me}: task {task} (batch {item.batch}, round {item.round}) failed: "
                f"{type(exc).__name__}: {exc}\n  client {self.me}'s order: {order}")

    def _timed_compute(self, task: Task, item: _Pending) -> tuple[
            tuple[int, torch.Tensor | None], float]:
        """Compute and return the CPU seconds the step took (wall time counts other processes)."""
        cpu = time.thread_time()
        result = self._compute(task, item)
        return result, time.thread_time() - cpu

    def _compute(self, task: Task, item: _Pending) -> tuple[int, torch.Tensor | None]:
        """Run the segment step ``task`` starts; return the next stage and its input."""
        p = self.plan.num_partitions
        if task.stage <= p:
            segment = self._segment[(task.owner, task.stage)]
            out = segment.forward(item.batch, item.tensor)
            if segment.last < p:
                return segment.last + 1, out
            loss, grad = segment.backward_loss(  # Note: loss chained
                item.batch, self._labels.pop((task.owner, item.batch)))
            self._loss[task.owner] += loss
            self.metrics.train_loss.labels(self.metrics.client, str(task.owner)).set(loss)
        else:
            segment = self._segment[(task.owner, partition_of(task.stage, p))]
            grad = segment.backward(item.batch, item.tensor)
        return 2 * p + 2 - segment.first, grad

    def _hand_on(self, task: Task, item: _Pending, stage: int,
                 result: torch.Tensor | None) -> None:
        if stage > 2 * self.plan.num_partitions:
            future = self._done.pop((task.owner, item.batch))
            if not future.done():
                future.set_result(None)
            return
        nxt = Task(task.owner, stage)
        assert result is not None, f"task {task} produced nothing for {nxt}"
        runner = self.plan.runner_of(nxt)
        # Segments are maximal, so the next stage after a segment always runs elsewhere.
        assert runner != self.me, f"task {task} hands on to {nxt} on its own client"
        msg = TaskMessage(nxt.owner, nxt.stage, item.batch, item.round, self.me, result)
        pending = self._send(runner, msg)
        if pending is None:
            return
        sending = asyncio.ensure_future(pending)
        self._sending.add(sending)
        sending.add_done_callback(self._sent)

    def _sent(self, sending: asyncio.Task[None]) -> None:
        self._sending.discard(sending)
        if not sending.cancelled() and sending.exception() and not self.failure.done():
            self.failure.set_result(sending.exception())  # type: ignore[arg-type]

    # -- owner side ----------------------------------------------------------------------------

    async def train_owner(self, owner: int, data: OwnerData, round_: int) -> OwnerStats:
        """Feed owner's shard through the pipeline for ``TRAINING_NUM_EPOCHS`` epochs."""
        s = self.plan.settings
        stats = OwnerStats(owner)
        self._loss[owner] = 0.0
        generator = torch.Generator().manual_seed(s.seed * 1_000_003 + owner * 7919 + round_)
        n = len(data.train_y)
        loop = asyncio.get_running_loop()
        m, owner_label = self.metrics, str(owner)
        for epoch in range(s.num_epochs):
            m.epoch.labels(m.client).set(epoch)
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, s.batch_size):
                index = order[start:start + s.batch_size]
                batch = self._next_batch[owner]
                self._next_batch[owner] += 1
                done: asyncio.Future[None] = loop.create_future()
                self._done[(owner, batch)] = done
                self._labels[(owner, batch)] = data.train_y[index]
                self._deliver(Task(owner, 1), _Pending(batch, round_, data.train_x[index]))
                m.in_flight.labels(m.client).set(1)
                await done  # Note: one batch in flight per owner
                m.in_flight.labels(m.client).set(0)
                stats.samples += len(index)
                stats.batches += 1
                m.batches.labels(m.client, owner_label).inc()
                m.samples.labels(m.client, owner_label).inc(len(index))
                self.progress.tick(round_, epoch, stats.batches, self._loss[owner], False)
        self.progress.tick(round_, s.num_epochs - 1, stats.batches, self._loss[owner], True)
        stats.loss_sum = self._loss[owner]
        return stats

    # -- weights -------------------------------------------------------------------------------

    def states(self) -> dict[str, torch.Tensor]:
        """Return every partition's weights as ``{"owner/partition/name": tensor}``."""
        return {f"{seg.owner}/{p}/{k}": v for seg in self.segments for p in seg.modules
                for k, v in seg.state(p).items()}

    def load_average(self, averaged: dict[str, torch.Tensor]) -> None:
        """Load ``{"partition/name": tensor}`` into every copy of that partition."""
        by_partition: dict[int, dict[str, torch.Tensor]] = defaultdict(dict)
        for key, value in averaged.items():
            partition, _, name = key.partition("/")
            by_partition[int(partition)][name] = value
        for seg in self.segments:
            for p in seg.modules:
                seg.load(p, by_partition[p])

    def close(self) -> None:
        """Stop the compute thread."""
        for sending in list(self._sending):
            sending.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _segments(plan: Plan, me: int, parts: list[nn.Module]) -> list[Segment]:
    """Return ``me``'s segments: each owner's maximal runs of consecutive partitions on ``me``."""
    s = plan.settings
    runs: list[list[tuple[int, int]]] = []
    for owner, p in plan.replicas_of(me):  # sorted by owner, then partition
        if runs and runs[-1][-1] == (owner, p - 1):
            runs[-1].append((owner, p))
        else:
            runs.append([(owner, p)])
    return [Segment(run[0][0], run[0][1], [copy.deepcopy(parts[p - 1]) for _, p in run],
                    s.optimizer, s.learning_rate) for run in runs]
