"""Placement rules: each checks the task lists and returns every violation it finds.

Rules, by the name a violation carries:

1. ``task-syntax``   every task is ``{owner}_{stage}`` with positive integers;
2. ``client-count``  one list per client (``NUM_CLIENTS`` lists);
3. ``range``         owners within 1..N, stages within 1..2P (a config written for another
   partition count is reported once, as such);
4. ``coverage``      every stage of every owner appears exactly once across all lists;
5. ``pairing``       stage s and stage 2P+1-s of an owner share a runner; an explicit
   ``FORWARD_BACKWARD_PAIR_STAGES`` must equal that canonical pairing (each pair named in
   one direction or in both, as a list of pairs or a mapping);
6. ``co-location``   stages 1, P, P+1 and 2P of owner o run on client o;
7. ``data-shards``   ``DATASET_N_SPLITS`` gives every owner a shard;
8. ``data-owners``   at least one client owns data (runs its own stages): a plan of helpers
   alone has nothing to train, shard or average.

The README's "No configuration hangs" is kept by the runtime, which never waits on list order;
see ``splitnet.plan.schedule`` and the note "Note: readiness scheduling".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from splitnet.config.parsing import plain_int, show
from splitnet.errors import Violation
from splitnet.plan.task import Task, TaskSyntaxError, pair_stage, partition_of

__all__ = ["Placement", "check_placement", "describe_stage"]


@dataclass(frozen=True)
class Placement:
    """The parsed task lists and where each task runs (valid tasks only)."""

    client_tasks: tuple[tuple[Task, ...], ...]
    runner_of_task: dict[Task, int]
    owners: tuple[int, ...]


def describe_stage(stage: int, num_partitions: int) -> str:
    """Return ``"forward of partition 3"`` / ``"backward of partition 3"`` for a stage."""
    direction = "forward" if stage <= num_partitions else "backward"
    return f"{direction} of partition {partition_of(stage, num_partitions)}"


def check_placement(
    lists: Sequence[Sequence[str]],
    num_clients: int,
    num_partitions: int,
    model: str,  # how the user named the model, e.g. "CURRENT_MODEL=CNN" or "--partitions 4"
    pair_stages: Any = None,
    dataset_n_splits: int | None = None,
) -> tuple[Placement, list[Violation]]:
    """Run every placement rule; return the placement and all violations found."""
    violations: list[Violation] = []
    p, n = num_partitions, num_clients
    if len(lists) != n:
        violations.append(Violation(
            "client-count", f"SIMULATION_STAGES_CLIENTS has {len(lists)} list(s) but "
            f"NUM_CLIENTS={n}: expected one list per client"))
    client_tasks = _parse_tasks(lists, violations)
    in_range, stage_rules_apply = _check_range(client_tasks, n, p, model, violations)
    if pair_stages is not None:
        _check_explicit_pairing(pair_stages, p, violations)
    placement_by_task: dict[Task, list[int]] = defaultdict(list)
    for client, tasks in enumerate(client_tasks, 1):
        for task in tasks:
            if task in in_range:
                placement_by_task[task].append(client)
    owners = tuple(sorted({task.owner for task in in_range}))
    runner_of_task = {task: clients[0] for task, clients in placement_by_task.items()}
    if stage_rules_apply:
        _check_coverage(placement_by_task, owners, p, violations)
        _check_pairing(runner_of_task, owners, p, violations)
        _check_colocation(runner_of_task, owners, p, violations)
    if dataset_n_splits is not None and dataset_n_splits < len(owners):
        violations.append(Violation(
            "data-shards", f"DATASET_N_SPLITS={dataset_n_splits} but there are {len(owners)} "
            f"data owners ({', '.join(map(str, owners))}); expected at least one shard each"))
    if not owners:
        violations.append(Violation(
            "data-owners", f"no task in SIMULATION_STAGES_CLIENTS is a stage of a client "
            f"1..{n}, so the plan has no data owner; expected at least one, e.g. client 1 "
            f"running '1_1' to '1_{2 * p}' ('splitnet plan --generate' writes such lists)"))
    return Placement(client_tasks, runner_of_task, owners), violations


def _parse_tasks(lists: Sequence[Sequence[str]], violations: list[Violation]) -> tuple[
        tuple[Task, ...], ...]:
    parsed = []
    for client, items in enumerate(lists, 1):
        tasks = []
        for item in items:
            try:
                tasks.append(Task.parse(item))
            except TaskSyntaxError as exc:
                violations.append(Violation(
                    "task-syntax", f"task {show(item)} in client {client}'s list: {exc}"))
        parsed.append(tuple(tasks))
    return tuple(parsed)


def _check_range(client_tasks: tuple[tuple[Task, ...], ...], n: int, p: int, model: str,
                 violations: list[Violation]) -> tuple[set[Task], bool]:
    """Return the tasks in range, and whether the per-stage rules make sense to run."""
    in_range: set[Task] = set()
    max_stage_by_owner: dict[int, int] = defaultdict(int)
    out_of_range: list[Violation] = []
    for client, tasks in enumerate(client_tasks, 1):
        for task in tasks:
            max_stage_by_owner[task.owner] = max(max_stage_by_owner[task.owner], task.stage)
            if task.owner > n:
                out_of_range.append(Violation(
                    "range", f"task '{task}' in client {client}'s list: owner {task.owner} is not "
                    f"a client (expected 1..{n})"))
            elif task.stage > 2 * p:
                out_of_range.append(Violation(
                    "range", f"task '{task}' in client {client}'s list: stage {task.stage} is "
                    f"beyond {2 * p} ({model} has {p} partitions, {2 * p} stages)"))
            else:
                in_range.add(task)
    highest = set(max_stage_by_owner.values())
    if len(highest) == 1:
        top = highest.pop()
        if top != 2 * p and top % 2 == 0:
            # Note: partition-count mismatch. A config written for another model has every
            # owner end at the same even stage; say that once instead of one error per task.
            violations.append(Violation(
                "range", f"config has {top // 2} partitions ({top} stages), {model} has "
                f"{p}; write the task lists for {p} partitions ('splitnet plan --generate' can)"))
            return in_range, False
    violations.extend(out_of_range)
    return in_range, True


def _check_coverage(placement: dict[Task, list[int]], owners: tuple[int, ...], p: int,
                    violations: list[Violation]) -> None:
    for owner in owners:
        for stage in range(1, 2 * p + 1):
            clients = placement.get(Task(owner, stage), [])
            what = f"owner {owner}'s {describe_stage(stage, p)}"
            if not clients:
                violations.append(Violation(
                    "coverage", f"task '{owner}_{stage}' ({what}) is in no client's list"))
            elif len(clients) > 1:
                where = ", ".join(f"client {c}" for c in clients)
                violations.append(Violation(
                    "coverage", f"task '{owner}_{stage}' ({what}) appears {len(clients)} times "
                    f"({where}); expected exactly once"))


def _check_pairing(runner: dict[Task, int], owners: tuple[int, ...], p: int,
                   violations: list[Violation]) -> None:
    for owner in owners:
        for partition in range(1, p + 1):
            forward, backward = Task(owner, partition), Task(owner, pair_stage(partition, p))
            if forward in runner and backward in runner and runner[forward] != runner[backward]:
                violations.append(Violation(
                    "pairing", f"task '{forward}' (forward of owner {owner}'s partition "
                    f"{partition}) runs on client {runner[forward]} but its pair '{backward}' "
                    f"runs on client {runner[backward]}; a partition's forward and backward "
                    "must share a runner"))


_ENDPOINT_ROLES = ("reads the raw inputs", "produces the model's outputs",
                   "computes the loss from the labels", "finishes the backward on the raw inputs")


def _check_colocation(runner: dict[Task, int], owners: tuple[int, ...], p: int,
                      violations: list[Violation]) -> None:
    endpoints = (1, p, p + 1, 2 * p)
    for owner in owners:
        seen: set[int] = set()
        for stage, role in zip(endpoints, _ENDPOINT_ROLES, strict=True):
            task = Task(owner, stage)
            if stage in seen or task not in runner:
                continue
            seen.add(stage)
            if runner[task] != owner:
                violations.append(Violation(
                    "co-location", f"task '{task}' ({role}) runs on client {runner[task]}; it "
                    f"must run on its owner, client {owner}, so that raw data, labels and loss "
                    "never leave it"))


def _check_explicit_pairing(given: Any, p: int, violations: list[Violation]) -> None:
    """Accept the canonical pairing, each pair named in one direction or in both.

    Note: pairing in both directions. The system splitnet replaces documented the pairing as a
    mapping of every stage to its pair (``{1: 8, 2: 7, ..., 8: 1}``); a pair named once, either
    way round, or in both directions is the same pairing.
    """
    canonical = [[s, pair_stage(s, p)] for s in range(1, p + 1)]
    problem = _pairing_problem(_as_pairs(given), p)
    if problem:
        violations.append(Violation(
            "pairing", f"FORWARD_BACKWARD_PAIR_STAGES={show(repr(given))} is not the pairing of "
            f"a {p}-partition model ({problem}); expected {canonical} (stage s pairs with "
            f"{2 * p + 1}-s; each pair in one direction or in both)"))


def _pairing_problem(pairs: list[tuple[int, int]] | None, p: int) -> str:
    """Return what is wrong with ``pairs`` as the pairing of a ``p``-partition model, or ""."""
    if pairs is None:
        return "expected a list of [stage, stage] pairs or a {stage: stage} mapping"
    seen: set[tuple[int, int]] = set()
    for a, b in pairs:
        if not (1 <= a <= 2 * p and b == pair_stage(a, p)):
            return f"{a} ↔ {b} is not a pair"
        if (a, b) in seen:
            return f"{a} ↔ {b} is given twice"
        seen.add((a, b))
    missing = [s for s in range(1, p + 1)
               if (s, pair_stage(s, p)) not in seen and (pair_stage(s, p), s) not in seen]
    if missing:
        return f"the pair of stage {missing[0]} is missing"
    return ""


def _as_pairs(given: Any) -> list[tuple[int, int]] | None:
    items = list(given.items()) if isinstance(given, dict) else given
    if not isinstance(items, (list, tuple)):
        return None
    pairs = []
    for item in items:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            return None
        try:
            pairs.append((_stage_number(item[0]), _stage_number(item[1])))
        except (TypeError, ValueError):
            return None
    return pairs


def _stage_number(value: Any) -> int:
    """Return a stage given as an int or a plain ASCII number string (Note: plain numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{value!r} is not a stage number")
    return value if isinstance(value, int) else plain_int(value)
