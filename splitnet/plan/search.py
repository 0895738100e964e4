"""Search placements for the lowest predicted round time (``splitnet plan --auto``). Pure.

A placement is which client runs each owner's middle partitions (2..P-1); the endpoints stay on
their owners, so every placement obeys the rules of ``splitnet validate`` by construction, and
each one is checked again with :func:`splitnet.plan.rules.check_placement` before it is kept.
The search is a local search: from all-local (and the current placement, when given), try every
move of one owner's consecutive middle partitions to another client (or home), the owners that
finish last first; take the first move that helps and search again from there, until no move
helps or the time budget is spent. Moves are compared on the round
time, then on the owners' summed finish times, so that a move that speeds one of two equally
slow owners is taken (the next move can then speed the other). All-local is always a candidate,
so the result is never predicted slower than all-local.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from splitnet.plan.generate import generate_lists
from splitnet.plan.rules import check_placement
from splitnet.plan.simulate import Costs, predict
from splitnet.plan.task import Task

__all__ = ["Candidate", "Search", "evaluate", "search"]

Offload = dict[tuple[int, int], int]


@dataclass(frozen=True)
class Candidate:
    """A placement, its task lists and its predicted round seconds."""

    offload: Mapping[tuple[int, int], int]
    lists: tuple[tuple[str, ...], ...]
    seconds: float
    key: tuple[float, float]  # (round seconds, owners' summed finish): what is minimised
    finish: tuple[float, ...] = ()  # when each owner's last batch is done, owners in order


@dataclass(frozen=True)
class Search:
    """The search's result: the best placement, all-local, and how many were predicted."""

    best: Candidate
    all_local: Candidate
    evaluated: int
    complete: bool  # False when the time budget ran out before a local optimum


def evaluate(num_clients: int, p: int, owners: Sequence[int], offload: Mapping[
        tuple[int, int], int], costs: Costs, batches: int | Mapping[int, int],
        depth: int) -> Candidate:
    """Build the lists of ``offload``, check every rule, and predict their round."""
    lists = generate_lists(num_clients, p, owners, offload)
    _, violations = check_placement(lists, num_clients, p, f"--partitions {p}")
    if violations:
        raise ValueError("search built an invalid placement: " + "; ".join(map(str, violations)))
    tasks = [[Task.parse(t) for t in tasks] for tasks in lists]
    prediction = predict(tasks, p, costs, batches, depth)
    clean = {k: r for k, r in offload.items() if r != k[0]}
    return Candidate(clean, tuple(tuple(x) for x in lists), prediction.seconds, prediction.key,
                     prediction.finish)


def _moves(offload: Offload, num_clients: int, p: int, owners: Sequence[int]) -> list[Offload]:
    """Every placement one move away: one owner's partitions a..b (middle) to one client.

    ``owners`` in the order their moves are tried (the latest to finish first), each owner's
    longest ranges first.
    """
    result = []
    ranges = sorted(((a, b) for a in range(2, p) for b in range(a, p)),
                    key=lambda r: (r[0] - r[1], r[0]))  # the longest ranges first
    for owner in owners:
        for first, last in ranges:
            for runner in range(1, num_clients + 1):
                moved = dict(offload)
                for q in range(first, last + 1):
                    moved[(owner, q)] = runner
                if moved != offload:
                    result.append(moved)
    return result


def search(num_clients: int, p: int, owners: Sequence[int], costs: Costs,
           batches: int | Mapping[int, int], depth: int = 1,
           start: Mapping[tuple[int, int], int] | None = None,
           budget_seconds: float = 10.0) -> Search:
    """Return the placement with the lowest predicted round time found within the budget."""
    deadline = time.monotonic() + budget_seconds
    all_local = evaluate(num_clients, p, owners, {}, costs, batches, depth)
    best = all_local
    evaluated = 1
    if start:
        given = evaluate(num_clients, p, owners, start, costs, batches, depth)
        evaluated += 1
        best = given if given.key < best.key else best
    seen = {tuple(sorted(best.offload.items()))}
    complete = True
    improved = True
    while improved:
        improved = False
        current = best
        latest_first = [o for _, o in sorted(zip(current.finish, owners, strict=True),
                                             reverse=True)]
        for moved in _moves(dict(current.offload), num_clients, p, latest_first):
            key = tuple(sorted((k, r) for k, r in moved.items() if r != k[0]))
            if key in seen:
                continue
            if time.monotonic() > deadline:
                complete = False
                break
            seen.add(key)
            candidate = evaluate(num_clients, p, owners, moved, costs, batches, depth)
            evaluated += 1
            if _better(candidate.key, best.key):  # first improvement: search again from it
                best = candidate
                improved = True
                break
        if not complete:
            break
    return Search(best, all_local, evaluated, complete)


def _better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Return whether ``a`` beats ``b`` by more than float noise (round first, then finish)."""
    if a[0] < b[0] * (1 - 1e-9):
        return True
    return a[0] <= b[0] * (1 + 1e-9) and a[1] < b[1] * (1 - 1e-9)
