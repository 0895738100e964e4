"""Runs of partitions and the next-stage rule, over the examples and random valid plans."""

from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from hypothesis import given

from splitnet.plan.rules import check_placement
from splitnet.plan.segments import Run, entries_of, hand_on, run_of, runs_of
from splitnet.plan.task import Task

from ..conftest import EXAMPLES, plan_of
from ..plans import valid_lists

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.env"))


@dataclass(frozen=True)
class Layout:
    num_partitions: int
    runners: Mapping[tuple[int, int], int]


def layout(lists, n, p):
    placement, violations = check_placement(lists, n, p, "TEST")
    assert violations == []
    runners = {(t.owner, t.partition(p)): c for t, c in placement.runner_of_task.items()}
    return Layout(p, runners), placement.owners


def runner(plan, owner, stage):
    return plan.runners[(owner, Task(owner, stage).partition(plan.num_partitions))]


def chain(plan, owner):
    """Follow hand_on from the owner's stage 1 to the end of its batch."""
    visited = [Task(owner, 1)]
    while (nxt := hand_on(plan, visited[-1])) is not None:
        visited.append(nxt)
        assert len(visited) <= 2 * plan.num_partitions
    return visited


def check_chains(plan, owners):
    p = plan.num_partitions
    for owner in owners:
        stages = [t.stage for t in chain(plan, owner)]
        assert stages == sorted(set(stages))  # in order, each stage once
        # A stage is skipped exactly when the client that runs it also ran the stage before it:
        # it is inside a segment, and the step that entered the segment ran it.
        entered = [1] + [s for s in range(2, 2 * p + 1)
                         if runner(plan, owner, s) != runner(plan, owner, s - 1)]
        assert stages == entered
    every_entry = {t for c in set(plan.runners.values()) for t in entries_of(plan, c)}
    assert every_entry == {t for owner in owners for t in chain(plan, owner)}


def check_runs(plan):
    for client in set(plan.runners.values()):
        runs = runs_of(plan, client)
        held = sorted((r.owner, q) for r in runs for q in r.partitions)
        assert held == sorted(k for k, c in plan.runners.items() if c == client)
        for run in runs:  # maximal: the neighbours run elsewhere (or do not exist)
            assert plan.runners.get((run.owner, run.first - 1)) != client
            assert plan.runners.get((run.owner, run.last + 1)) != client
            for q in run.partitions:
                assert run_of(plan, run.owner, q) == run


@given(valid_lists())
def test_hand_on_visits_every_stage_in_order_skipping_those_inside_segments(case):
    plan, owners = layout(*case)
    check_runs(plan)
    check_chains(plan, owners)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_every_example_plan_hands_on_through_all_its_stages(path):
    plan = plan_of(path.name)
    check_runs(plan)
    check_chains(plan, plan.owners)


def test_cross_offload_example_runs_and_next_stages():
    plan = plan_of("cnn_cross_offload.env")
    assert runs_of(plan, 1) == [Run(1, 1, 2), Run(1, 4, 4), Run(4, 3, 3)]
    assert runs_of(plan, 3) == [Run(3, 1, 1), Run(3, 4, 4), Run(5, 2, 3)]
    assert [str(t) for t in chain(plan, 1)] == ["1_1", "1_3", "1_4", "1_6", "1_7"]
    assert [str(t) for t in chain(plan, 5)] == ["5_1", "5_2", "5_4", "5_6", "5_8"]
    assert Run(1, 4, 4).entries(4) == (Task(1, 4),)  # Note: loss chained
    assert Run(1, 1, 2).entries(4) == (Task(1, 1), Task(1, 7))


def test_all_local_owner_is_one_step():
    plan = plan_of("cnn_all_local.env")
    assert runs_of(plan, 2) == [Run(2, 1, 4)]
    assert hand_on(plan, Task(2, 1)) is None
    assert list(entries_of(plan, 2)) == [Task(2, 1)]
