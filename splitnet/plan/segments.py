"""Runs of partitions and the next-stage rule: where the output of a segment step goes.

A *run* is a maximal range of one owner's consecutive partitions that the plan places on one
client; the runtime keeps one segment (one autograd graph, one optimizer) per run. A segment
step starts at an *entry* of its run and covers the whole run:

* the forward entry is the run's first partition's forward; the step runs every forward of the
  run and hands its output to the forward of the next partition;
* the owner's last run (it holds partition P, on the owner by endpoint co-location) chains the
  loss and the run's backward into the same step (Note: loss chained), so stage P+1 is never an
  entry;
* the backward entry of any other run is its last partition's backward; the step runs every
  backward of the run and hands the gradient to the backward of the partition before the run.

:func:`hand_on` is that rule; it returns None when the step finishes the owner's batch (its
gradient would go below partition 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from splitnet.plan.task import Task, pair_stage, partition_of

__all__ = ["Layout", "Run", "entries_of", "hand_on", "run_of", "runs_of"]


class Layout(Protocol):
    """What the rule needs of a plan: P and the runner of every (owner, partition)."""

    @property
    def num_partitions(self) -> int:
        """Return P."""

    @property
    def runners(self) -> Mapping[tuple[int, int], int]:
        """Return the runner of every (owner, partition)."""


@dataclass(frozen=True, order=True)
class Run:
    """Owner ``owner``'s partitions ``first..last``, a maximal run on one client."""

    owner: int
    first: int
    last: int

    @property
    def partitions(self) -> range:
        """Return the run's partitions in order."""
        return range(self.first, self.last + 1)

    def entries(self, num_partitions: int) -> tuple[Task, ...]:
        """Return the tasks at which a step of this run starts (forward, then backward)."""
        forward = Task(self.owner, self.first)
        if self.last == num_partitions:  # Note: loss chained; the backward follows the forward
            return (forward,)
        return forward, Task(self.owner, pair_stage(self.last, num_partitions))


def runs_of(plan: Layout, client: int) -> list[Run]:
    """Return ``client``'s runs, by owner, then partition."""
    runs: list[Run] = []
    for owner, p in sorted(key for key, runner in plan.runners.items() if runner == client):
        if runs and runs[-1].owner == owner and runs[-1].last == p - 1:
            runs[-1] = Run(owner, runs[-1].first, p)
        else:
            runs.append(Run(owner, p, p))
    return runs


def run_of(plan: Layout, owner: int, partition: int) -> Run:
    """Return the run that holds ``owner``'s ``partition`` (on the client that runs it)."""
    runner = plan.runners[(owner, partition)]
    first = last = partition
    while first > 1 and plan.runners[(owner, first - 1)] == runner:
        first -= 1
    while last < plan.num_partitions and plan.runners[(owner, last + 1)] == runner:
        last += 1
    return Run(owner, first, last)


def entries_of(plan: Layout, client: int) -> dict[Task, Run]:
    """Return every task at which a step starts on ``client``, with the run it steps."""
    p = plan.num_partitions
    return {task: run for run in runs_of(plan, client) for task in run.entries(p)}


def hand_on(plan: Layout, task: Task) -> Task | None:
    """Return the task that receives the output of the step ``task`` starts (None: batch done).

    ``task`` must be an entry of its run (see :meth:`Run.entries`).
    """
    p = plan.num_partitions
    run = run_of(plan, task.owner, partition_of(task.stage, p))
    if task.stage <= p and run.last < p:
        return Task(task.owner, run.last + 1)
    if run.first == 1:
        return None
    return Task(task.owner, pair_stage(run.first - 1, p))
