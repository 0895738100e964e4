"""Which task a client runs next, and a dry run of one batch for every owner.

Note: readiness scheduling. A client's list is an order of *preference*, not a sequence it waits
on: whenever several of its tasks have their input ready, it runs the earliest one in its list;
it never waits for a task whose input has not come while another one is ready. Each owner's
stages form a chain (stage s needs stage s-1), every task has exactly one runner (coverage), so
some ready task always exists until every task has run: no order can hang the cluster. The
runtime calls :func:`pick` and the dry run below calls the same function, so the dry run shows
what the runtime does.

Under *strict* in-order execution, some orders would wait on themselves;
:func:`strict_order_wait_chain` finds such a chain so ``splitnet plan`` can say that splitnet
does not need to worry about it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from splitnet.plan.task import Task

__all__ = ["DryRun", "dry_run", "pick", "predecessor", "strict_order_wait_chain"]


def predecessor(task: Task) -> Task | None:
    """Return the task whose output ``task`` consumes (None for stage 1)."""
    return Task(task.owner, task.stage - 1) if task.stage > 1 else None


def pick(ready: Collection[Task], order: Sequence[Task]) -> Task | None:
    """Return the ready task that comes first in ``order`` (None if nothing is ready)."""
    for task in order:
        if task in ready:
            return task
    return None


@dataclass(frozen=True)
class DryRun:
    """Result of simulating one batch per owner with unit-time tasks."""

    steps: tuple[tuple[Task | None, ...], ...]  # steps[t][client-1]: what the client ran at t
    unfinished: tuple[Task, ...]

    @property
    def completes(self) -> bool:
        """Return True when every task ran."""
        return not self.unfinished


def dry_run(client_tasks: Sequence[Sequence[Task]]) -> DryRun:
    """Simulate the runtime's scheduling (:func:`pick`) for one batch of every owner."""
    runner = {task: client for client, tasks in enumerate(client_tasks) for task in tasks}
    done: set[Task] = set()
    steps: list[tuple[Task | None, ...]] = []
    remaining = set(runner)
    while remaining:
        ready = {t for t in remaining if (pre := predecessor(t)) is None or pre in done}
        step = tuple(pick(ready, tasks) for tasks in client_tasks)
        if not any(step):
            break
        steps.append(step)
        ran = {t for t in step if t is not None}
        done |= ran
        remaining -= ran
    return DryRun(tuple(steps), tuple(sorted(remaining)))


def strict_order_wait_chain(client_tasks: Sequence[Sequence[Task]]) -> list[tuple[Task, int]]:
    """Return a chain of (task, client) that would wait on itself under strict list order.

    Empty when running every list strictly in order completes one batch.
    """
    runner: Mapping[Task, int] = {
        task: client for client, tasks in enumerate(client_tasks, 1) for task in tasks
    }
    position = [0] * len(client_tasks)
    done: set[Task] = set()
    progress = True
    while progress:
        progress = False
        for index, tasks in enumerate(client_tasks):
            while position[index] < len(tasks):
                task = tasks[position[index]]
                pre = predecessor(task)
                if pre is not None and pre not in done:
                    break
                done.add(task)
                position[index] += 1
                progress = True
    blocked = [i for i, tasks in enumerate(client_tasks) if position[i] < len(tasks)]
    if not blocked:
        return []
    chain: list[tuple[Task, int]] = []
    seen: set[int] = set()
    client = blocked[0]
    while client not in seen:
        seen.add(client)
        task = client_tasks[client][position[client]]
        chain.append((task, client + 1))
        pre = predecessor(task)
        if pre is None or pre not in runner:
            break
        client = runner[pre] - 1
        if position[client] >= len(client_tasks[client]):
            break
    start = next((i for i, (_, c) in enumerate(chain) if c == client + 1), 0)
    return chain[start:]
