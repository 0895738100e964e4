"""The interpreter runs one client's part of the plan: it feeds segments from an inbox.

A client keeps a segment for every run of an owner's partitions it runs
(:class:`~splitnet.runtime.replicas.Replicas`), an inbox per task, and one compute worker. Input
arrives only at a step's entry (:meth:`splitnet.plan.segments.Run.entries`): the forward of a
run's first partition, or the backward of its last. Whenever tasks have input waiting, the worker
runs the earliest of them in the client's list (``splitnet.plan.schedule.pick``; Note: readiness
scheduling). The result goes to the task :func:`splitnet.plan.segments.hand_on` names (clipped
and noised first where privacy at the cut is asked for: Note: noise at the cut), through
``send``, which only queues (Note: one failure path, in ``splitnet.transport.base``); when no task
follows, the owner's batch is done and its feeder (:class:`~splitnet.runtime.feeder.Feeder`) is
told.

Note: loss chained. The forward of an owner's last segment runs on the owner, and so does the
loss (endpoint co-location): the loss and the segment's backward follow in the same step.

Note: admission. :meth:`Interpreter.accept` queues only what the plan, the round and the batches
that ran here allow, in the shape the segment expects (:mod:`splitnet.runtime.admission`): a
wrong input is refused there and never reaches a step.

Note: inline compute. Handing a step to the compute thread and back costs ~0.1 ms, more than a
small partition's whole step. A task whose steps have taken under ``INLINE_SECONDS`` of CPU time
(a moving average) runs on the event loop instead, which yields between steps so that network
I/O goes on; a task is first run on the thread, so a large partition never blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from splitnet.errors import ProtocolError, RuntimeFailure
from splitnet.learning.cut_privacy import noise, noised
from splitnet.learning.slowdown import slow_down
from splitnet.plan.plan import Plan
from splitnet.plan.rounds import INITIAL_ROUND
from splitnet.plan.schedule import pick
from splitnet.plan.segments import entries_of, hand_on
from splitnet.plan.task import Task, partition_of
from splitnet.plan.units import batch_of
from splitnet.runtime.admission import Admission
from splitnet.runtime.inflight import OwnerBatch, Pending
from splitnet.runtime.replicas import Replicas
from splitnet.runtime.segment import Segment
from splitnet.telemetry.metrics import Metrics
from splitnet.telemetry.records import TimelineRow
from splitnet.transport.messages import TaskMessage

__all__ = ["INLINE_SECONDS", "Interpreter", "Send"]

log = logging.getLogger("splitnet.runtime")
INLINE_SECONDS = 0.002
Send = Callable[[int, TaskMessage], None]
"""Queues a message for the client that runs its task; never raises (Note: one failure path)."""


@dataclass(frozen=True)
class _Step:
    """What the step an entry task starts does: which segment, and where its result goes."""

    segment: Segment
    next: Task | None  # None: the owner's batch is done
    runner: int  # the client that runs ``next`` (0 when there is none)
    noised: bool = False  # clipped and noised before it leaves (Note: noise at the cut)


class Interpreter:
    """Runs client ``me``'s tasks for every owner it serves."""

    def __init__(self, plan: Plan, me: int, replicas: Replicas, send: Send,
                 metrics: Metrics | None = None) -> None:
        self.plan = plan
        self.me = me
        self.replicas = replicas
        self.metrics = metrics or Metrics(me)
        self.order = plan.tasks_of(me)
        self.round = INITIAL_ROUND  # no task before the initial model; start_round(0) opens 0
        self.timeline: list[TimelineRow] = []
        self._send = send
        entries = entries_of(plan, me)
        self._steps = {task: self._step(task, run.owner, run.first)
                       for task, run in entries.items()}
        self._admission = Admission(plan, me, replicas, entries)
        self._inbox: dict[Task, deque[Pending]] = defaultdict(deque)
        self._batches: dict[tuple[int, int], OwnerBatch] = {}
        self._micro = plan.training.micro_batches
        self._wake = asyncio.Event()
        self._cost: dict[Task, float] = {}  # moving average of each task's step, seconds
        # Note: one thread count. OpenMP keeps a thread count per thread: the compute thread
        # takes the client's, so a step gives the same bits inline or on the thread.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"compute{me}",
                                        initializer=torch.set_num_threads,
                                        initargs=(torch.get_num_threads(),))

    def _step(self, task: Task, owner: int, first: int) -> _Step:
        nxt = hand_on(self.plan, task)
        runner = 0 if nxt is None else self.plan.runner_of(nxt)
        # Runs are maximal, so the next stage after a step always runs elsewhere.
        assert runner != self.me, f"task {task} hands on to {nxt} on its own client"
        return _Step(self.replicas.segment_for(owner, first), nxt, runner,
                     noised(self.plan, task))

    def start_round(self, round_: int) -> None:
        """Enter ``round_``: queued messages of that round may now run."""
        self.round = round_
        self.metrics.round.labels(self.metrics.client).set(max(round_, 0))
        self._wake.set()

    def resume(self, round_: int, latest: dict[int, int]) -> None:
        """Continue after round ``round_`` with each owner's latest batch that ran here."""
        self._admission.restore(latest)
        self.start_round(round_)

    def latest_batches(self) -> dict[int, int]:
        """Return each owner's latest batch that ran here (batch numbers go on across rounds)."""
        return self._admission.latest()

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
        if task not in self._steps:
            segment = self.replicas.segment_for(msg.owner, partition_of(msg.stage, p))
            raise ProtocolError(f"task {task} is inside client {self.me}'s segment of owner "
                                f"{msg.owner}'s partitions {segment.first}-{segment.last}; input "
                                "arrives only at a segment's ends")
        tensor = self._admission.check(msg, task, self.round)  # Note: admission
        if any((item.batch, item.round) == (msg.batch, msg.round) for item in self._inbox[task]):
            raise ProtocolError(f"task {task} batch {msg.batch} arrived twice")
        self._deliver(task, Pending(msg.batch, msg.round, tensor))

    def feed(self, owner: int, batch: int, round_: int, x: torch.Tensor,
             labels: torch.Tensor) -> asyncio.Future[float]:
        """Queue owner's ``batch`` at stage 1; the future gives its loss once it is done.

        With ``MICRO_BATCHES=m`` the batch goes in as up to ``m`` units (micro-batches).
        """
        task = Task(owner, 1)
        assert task in self._steps, f"client {self.me} does not run {task}"
        entry, units = OwnerBatch.of(batch, labels, self._micro)
        self._batches[(owner, batch)] = entry
        for unit, part in units:
            self._deliver(task, Pending(unit, round_, x[part]))
        return entry.done

    def _deliver(self, task: Task, item: Pending) -> None:
        self._inbox[task].append(item)
        self._wake.set()

    # -- compute loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run ready tasks forever, earliest in the client's list first.

        Raises RuntimeFailure naming the step (and showing the client's order) when one fails.
        """
        loop = asyncio.get_running_loop()
        while True:
            task = pick(self._ready(), self.order)
            if task is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = next(i for i in self._inbox[task] if i.round == self.round)
            self._inbox[task].remove(item)
            m = self.metrics
            m.queue_depth.labels(m.client).set(sum(len(q) for q in self._inbox.values()))
            start = time.time()
            inline = self._cost.get(task, INLINE_SECONDS) < INLINE_SECONDS
            try:
                if inline:  # Note: inline compute
                    result, cpu = self._timed_compute(task, item)
                else:
                    result, cpu = await loop.run_in_executor(
                        self._pool, self._timed_compute, task, item)
            except Exception as exc:
                raise RuntimeFailure(self._step_failure(task, item, exc)) from exc
            end = time.time()
            self._cost[task] = 0.8 * self._cost.get(task, cpu) + 0.2 * cpu
            p = self.plan.num_partitions
            m.task_seconds.labels(m.client, str(task.owner), str(partition_of(task.stage, p)),
                                  "forward" if task.stage <= p else "backward").observe(end - start)
            self.timeline.append(TimelineRow(self.me, task.owner, task.stage, item.batch,
                                             item.round, start, end, "compute", None, 0, cpu))
            self._admission.ran(task, item.batch)
            self._hand_on(task, item, result)
            if inline:
                await asyncio.sleep(0)  # let network I/O and the owners run between steps

    def _ready(self) -> set[Task]:
        """Drop what can no longer run; return the tasks with input of the current round.

        Note: queue per round. Any queued item of the current round may run, wherever it stands
        in its task's queue, so an input for the next round never holds up this round's.
        """
        ready = set()
        for task, queue in self._inbox.items():
            stale = [i for i in queue
                     if i.round < self.round or self._admission.stale(task, i.batch)]
            for item in stale:
                queue.remove(item)
                log.info("client %d: dropped task %s batch %d of round %d (it can no longer run)",
                         self.me, task, item.batch, item.round)
            if any(item.round == self.round for item in queue):
                ready.add(task)
        return ready

    def _step_failure(self, task: Task, item: Pending, exc: BaseException) -> str:
        # Note: failing step. Show the client's order with the failing task marked.
        order = " ".join(f">{t}<" if t == task else str(t) for t in self.order)
        return (f"client {self.me}: task {task} (batch {item.batch}, round {item.round}) failed: "
                f"{type(exc).__name__}: {exc}\n  client {self.me}'s order: {order}")

    def _timed_compute(self, task: Task, item: Pending) -> tuple[torch.Tensor | None, float]:
        """Compute and return the CPU seconds the step took (wall time counts other processes)."""
        cpu = time.thread_time()
        result = self._compute(task, item)
        step = self._steps[task]
        if result is not None and step.noised:  # Note: noise at the cut
            gradient = step.next is not None and step.next.stage > self.plan.num_partitions
            result = noise(self.plan.training, task, item.batch, item.round, result, gradient)
        return result, slow_down(time.thread_time() - cpu)  # test-only hook: 1x unless set

    def _compute(self, task: Task, item: Pending) -> torch.Tensor | None:
        """Run the segment step ``task`` starts; return what goes to the next task."""
        step = self._steps[task]
        p = self.plan.num_partitions
        if task.stage > p:
            return step.segment.backward(item.batch, item.tensor)
        out = step.segment.forward(item.batch, item.tensor)
        if step.next is not None and step.next.stage <= p:
            return out
        batch = self._batches[(task.owner, batch_of(item.batch, self._micro))]  # Note: loss chained
        loss, grad = step.segment.backward_loss(item.batch, batch.labels[item.batch],
                                                batch.shares[item.batch])
        batch.loss += loss
        self.metrics.train_loss.labels(self.metrics.client, str(task.owner)).set(batch.loss)
        return grad

    def _hand_on(self, task: Task, item: Pending, result: torch.Tensor | None) -> None:
        step = self._steps[task]
        if step.next is None:
            key = (task.owner, batch_of(item.batch, self._micro))
            batch = self._batches[key]
            batch.left -= 1
            if batch.left == 0:
                del self._batches[key]
                if not batch.done.done():
                    batch.done.set_result(batch.loss)
            return
        assert result is not None, f"task {task} produced nothing for {step.next}"
        self._send(step.runner, TaskMessage(step.next.owner, step.next.stage, item.batch,
                                            item.round, self.me, result))

    def close(self) -> None:
        """Stop the compute thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)
