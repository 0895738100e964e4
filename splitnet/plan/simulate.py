"""Predict one round's time for a placement: a discrete-event simulation of the runtime.

Pure (no torch, no I/O). The simulation follows the interpreter (``splitnet.runtime``):

* every client has one compute worker; whenever it is free and several of its entry tasks have
  input waiting, it runs the earliest in its list (:func:`splitnet.plan.schedule.pick`, Note:
  readiness scheduling); a step covers a whole run (:mod:`splitnet.plan.segments`), so its cost
  is the sum of the run's forward (or backward) times plus a per-step overhead (optimizer,
  bookkeeping), divided by the client's speed, plus ``message_cpu`` for each message the step
  receives or sends (serialising, TLS, gRPC run on the client's own event loop); the owner's last
  run chains the loss and the run's backward (Note: loss chained);
* a step's output goes to :func:`splitnet.plan.segments.hand_on`'s task on its runner: the
  sender's uplink carries one message at a time (bytes / min(sender, receiver bandwidth)), then
  the message arrives after ``rtt / 2`` plus a fixed per-message overhead;
* each owner's feeder keeps at most ``depth`` batches in flight (PIPELINE_DEPTH) and feeds
  ``batches`` batches a round;
* ``cores`` (optional): the clients share that many cores of one host (``splitnet local``);
  when the running steps demand more, each runs at ``cores`` / demand, as a host's scheduler
  shares its cores among processes (Note: shared cores); a step of a client of speed s < 1
  demands s of a core (Note: slowed share). None means every client has its own machine;
* ``round_cpu[c-1]`` (optional): CPU seconds client c spends a round beside its steps and
  messages (reports, states, loading the model; on the aggregator averaging and evaluating),
  on threads that share its process and cores: spread evenly over its steps (Note: round CPU);
* ``compute_cpu``: the CPU seconds in a second of the costs' compute (1 on an idle host). A
  client of speed s < 1 is emulated by sleeping (1/s - 1) x its step's *CPU*, which other work
  on a shared host does not stretch, while the compute itself is stretched (Note: slept CPU).
  With ``cores`` the shared rate stretches such a step whole, sleep included: a small error,
  as the step demands only s of a core.

The round ends when every owner's last batch is done, plus ``round_overhead`` (the round-end
exchange and a fixed constant).
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from splitnet.plan.schedule import pick
from splitnet.plan.segments import entries_of, hand_on, run_of
from splitnet.plan.task import Task, partition_of

__all__ = ["Costs", "Prediction", "predict", "runners_of"]


@dataclass(frozen=True)
class Costs:
    """What one step and one message cost: measured times, sizes, speeds and links.

    ``forward[p-1]`` / ``backward[p-1]``: seconds of partition p on the profiled machine (the
    loss is in ``backward[P-1]``); ``activation_bytes[p-1]``: bytes partition p hands on (its
    gradient has the same size); ``speed[c-1]``: client c's speed relative to that machine;
    ``bandwidth[c-1]``: client c's link in bytes/s (``math.inf``: unlimited).
    """

    forward: tuple[float, ...]
    backward: tuple[float, ...]
    activation_bytes: tuple[int, ...]
    speed: tuple[float, ...]
    bandwidth: tuple[float, ...]
    rtt: float = 0.0
    message_overhead: float = 0.0
    step_overhead: float = 0.0
    round_overhead: float = 0.0
    cores: int | None = None
    message_cpu: float = 0.0
    compute_cpu: float = 1.0
    round_cpu: tuple[float, ...] = ()


@dataclass(frozen=True)
class Prediction:
    """The predicted round: its seconds and each client's busy compute seconds."""

    seconds: float
    busy: tuple[float, ...] = field(default=())
    messages: int = 0
    finish: tuple[float, ...] = field(default=())  # when each owner's last batch was done

    @property
    def key(self) -> tuple[float, float]:
        """Return what the search minimises: the round, then the owners' summed finish times."""
        return self.seconds, sum(self.finish)


@dataclass(frozen=True)
class _Layout:
    num_partitions: int
    runners: Mapping[tuple[int, int], int]


def runners_of(client_tasks: Sequence[Sequence[Task]], num_partitions: int) -> dict[
        tuple[int, int], int]:
    """Return the runner of every (owner, partition) of valid task lists."""
    return {(t.owner, partition_of(t.stage, num_partitions)): client
            for client, tasks in enumerate(client_tasks, 1) for t in tasks}


def predict(client_tasks: Sequence[Sequence[Task]], num_partitions: int, costs: Costs,
            batches: int | Mapping[int, int], depth: int = 1) -> Prediction:
    """Simulate one round of valid task lists; return the predicted round time.

    ``batches``: batches each owner trains a round (one number, or by owner).
    """
    return _Simulation(client_tasks, num_partitions, costs, batches, depth).run()


class _Simulation:
    """The event loop of :func:`predict`."""

    def __init__(self, client_tasks: Sequence[Sequence[Task]], p: int, costs: Costs,
                 batches: int | Mapping[int, int], depth: int) -> None:
        self.p, self.costs, self.depth = p, costs, max(1, depth)
        self.orders = [tuple(tasks) for tasks in client_tasks]
        self.layout = _Layout(p, runners_of(client_tasks, p))
        self.owners = sorted({o for o, _ in self.layout.runners})
        self.batches = {o: batches if isinstance(batches, int) else batches[o]
                        for o in self.owners}
        n = len(self.orders)
        self.steps: dict[Task, tuple[float, int, Task | None]] = {}
        for client in range(1, n + 1):
            entries = entries_of(self.layout, client)
            # Note: round CPU. Measured per client (bench placement), not per step: each of the
            # client's steps carries an equal share, so it lands where that client is busy. It
            # runs on other threads (averaging, evaluating): in series with the steps it is
            # right where the cores are all busy (the bench: clients of one host), and an upper
            # bound where cores are spare.
            count = sum(self.batches[t.owner] for t in entries)
            extra = costs.round_cpu[client - 1] / count if costs.round_cpu and count else 0.0
            for task in entries:
                seconds, size, nxt = self._step(task, client)
                self.steps[task] = (seconds + extra, size, nxt)
        self.inbox: dict[int, dict[Task, deque[int]]] = {
            c: defaultdict(deque) for c in range(1, n + 1)}
        self.active: dict[int, tuple[float, Task, int]] = {}  # client → (end, task, batch)
        self.rate = 1.0  # how fast the running steps run (Note: shared cores)
        self.uplink = [0.0] * n
        self.busy = [0.0] * n
        self.events: list[tuple[float, int, int, Task, int]] = []  # input arrivals
        self.seq = 0
        self.fed = dict.fromkeys(self.owners, 0)
        self.finished = dict.fromkeys(self.owners, 0)
        self.finish = dict.fromkeys(self.owners, 0.0)
        self.messages = 0
        self.now = 0.0

    def _step(self, task: Task, client: int) -> tuple[float, int, Task | None]:
        """Return (seconds, bytes handed on, next task) of the step ``task`` starts."""
        c, p = self.costs, self.p
        run = run_of(self.layout, task.owner, partition_of(task.stage, p))
        parts = [q - 1 for q in run.partitions]
        if task.stage <= p:
            seconds = sum(c.forward[i] for i in parts)
            if run.last == p:
                seconds += sum(c.backward[i] for i in parts)
        else:
            seconds = sum(c.backward[i] for i in parts)
        nxt = hand_on(self.layout, task)
        size = 0
        if nxt is not None:
            size = (c.activation_bytes[run.last - 1] if nxt.stage <= p
                    else c.activation_bytes[run.first - 2])
        messages = (task.stage != 1) + (nxt is not None)  # stage 1 is fed at home
        # Note: slept CPU. A step of speed s takes its compute plus (1/s - 1) x its CPU: at
        # compute_cpu = 1 that is (compute) / s, as on a machine s times as fast.
        work = seconds + c.step_overhead
        slowed = work * (1 / c.speed[client - 1] - 1) * c.compute_cpu
        seconds = work + slowed + messages * c.message_cpu
        return seconds, size, nxt

    def _push(self, at: float, client: int, task: Task, batch: int) -> None:
        """Queue ``batch``'s input for ``task`` on ``client``, arriving at ``at``."""
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, client, task, batch))

    def _feed(self, owner: int) -> None:
        while (self.fed[owner] < self.batches[owner]
               and self.fed[owner] - self.finished[owner] < self.depth):
            self._push(self.now, owner, Task(owner, 1), self.fed[owner])
            self.fed[owner] += 1

    def run(self) -> Prediction:
        for owner in self.owners:
            self._feed(owner)
        while self.events or self.active:
            arrival = self.events[0][0] if self.events else math.inf
            done = min((at for at, _, _ in self.active.values()), default=math.inf)
            self.now = min(arrival, done)
            for client in [c for c, (at, _, _) in self.active.items() if at <= self.now]:
                _, task, batch = self.active.pop(client)
                self._done(client, task, batch)
            while self.events and self.events[0][0] <= self.now:
                _, _, client, task, batch = heapq.heappop(self.events)
                self.inbox[client][task].append(batch)
            self._start_idle()
        return Prediction(self.now + self.costs.round_overhead, tuple(self.busy), self.messages,
                          tuple(self.finish[o] for o in self.owners))

    def _start_idle(self) -> None:
        started: dict[int, tuple[float, Task, int]] = {}
        for client in range(1, len(self.orders) + 1):
            if client in self.active:
                continue
            ready = {t for t, q in self.inbox[client].items() if q}
            task = pick(ready, self.orders[client - 1])
            if task is None:
                continue
            batch = self.inbox[client][task].popleft()
            seconds = self.steps[task][0]
            self.busy[client - 1] += seconds
            started[client] = (seconds, task, batch)
        self._share_cores({c: (self.now + seconds, task, batch)
                           for c, (seconds, task, batch) in started.items()})

    def _share_cores(self, started: dict[int, tuple[float, Task, int]]) -> None:
        """Start ``started`` (each with its full-speed end) and re-time every running step.

        Note: shared cores. With ``cores`` set, the running steps share them as a host's
        scheduler shares them among processes: when they would use more than ``cores``, each
        runs at ``cores`` / their demand, so every step's end moves whenever one starts or
        ends. Note: slowed share. A step of a client of speed s < 1 demands s of a core: on a
        shared host a slower client is one that sleeps part of each step
        (``SPLITNET_TEST_SLOWDOWN``), so its step takes longer but uses no more CPU.
        """
        old = self.rate
        self.active.update(started)
        demand = sum(min(1.0, self.costs.speed[c - 1]) for c in self.active)
        cores = self.costs.cores
        self.rate = 1.0 if cores is None or demand <= cores + 1e-9 else cores / demand
        for client, (at, task, batch) in self.active.items():
            slowed_from = 1.0 if client in started else old
            if slowed_from != self.rate:
                self.active[client] = (self.now + (at - self.now) * slowed_from / self.rate,
                                       task, batch)

    def _done(self, client: int, task: Task, batch: int) -> None:
        self._share_cores({})
        _, size, nxt = self.steps[task]
        if nxt is None:
            self.finished[task.owner] += 1
            self.finish[task.owner] = self.now
            self._feed(task.owner)
            return
        receiver = self.layout.runners[(nxt.owner, partition_of(nxt.stage, self.p))]
        c = self.costs
        rate = min(c.bandwidth[client - 1], c.bandwidth[receiver - 1])
        start = max(self.now, self.uplink[client - 1])
        sent = start + (0.0 if math.isinf(rate) else size / rate)
        self.uplink[client - 1] = sent
        self.messages += 1
        self._push(sent + c.rtt / 2 + c.message_overhead, receiver, nxt, batch)
