from hypothesis import given

from splitnet.plan.schedule import dry_run, pick, strict_order_wait_chain
from splitnet.plan.task import Task

from ..plans import valid_lists


def tasks(*lists):
    return [[Task.parse(t) for t in items] for items in lists]


# Owner 1's partition 2 runs on client 2 and owner 2's on client 1, and each client lists the
# other owner's task first: strictly in order, each waits on the other.
CROSSED = tasks(["2_2", "2_7", "1_1", "1_3", "1_4", "1_5", "1_6", "1_8"],
                ["1_2", "1_7", "2_1", "2_3", "2_4", "2_5", "2_6", "2_8"])


def test_pick_prefers_the_earliest_ready_task_in_the_list():
    order = [Task(2, 2), Task(1, 1), Task(1, 2)]
    assert pick({Task(1, 2), Task(1, 1)}, order) == Task(1, 1)
    assert pick(set(), order) is None


def test_an_order_that_would_wait_on_itself_strictly_still_completes():
    chain = strict_order_wait_chain(CROSSED)
    assert [(str(t), c) for t, c in chain] == [("2_2", 1), ("1_2", 2)]
    run = dry_run(CROSSED)
    assert run.completes
    assert [str(t) for t in run.steps[0]] == ["1_1", "2_1"]  # neither waits for its first entry


def test_in_order_lists_have_no_wait_chain():
    assert strict_order_wait_chain(tasks(["1_1", "1_2", "1_3", "1_4"])) == []


def test_dry_run_reports_tasks_that_can_never_run():
    run = dry_run(tasks(["1_1", "1_3", "1_4"]))  # 1_2 missing: 1_3 waits forever
    assert not run.completes and [str(t) for t in run.unfinished] == ["1_3", "1_4"]


@given(valid_lists())
def test_every_task_runs_exactly_once_and_after_its_input(case):
    lists, _, _ = case
    run = dry_run(tasks(*lists))
    when = {}
    for step, ran in enumerate(run.steps):
        for task in ran:
            if task is not None:
                assert task not in when
                when[task] = step
    assert len(when) == sum(len(x) for x in lists)
    for task, step in when.items():
        if task.stage > 1:
            assert when[Task(task.owner, task.stage - 1)] < step
