import pytest
from hypothesis import given
from hypothesis import strategies as st

from splitnet.plan.task import Task, TaskSyntaxError, pair_stage, partition_of, stage_of


@given(st.integers(1, 10**6), st.integers(1, 10**6))
def test_task_string_round_trips(owner, stage):
    task = Task(owner, stage)
    assert Task.parse(str(task)) == task


@pytest.mark.parametrize("text", ["1-3", "a_2", "1_0", "0_1", "_1", "1_", "1_2_3", "", " ", "1_-2"])
def test_bad_task_names_the_expected_form(text):
    with pytest.raises(TaskSyntaxError, match=r"expected '\{owner\}_\{stage\}', e.g. '1_3'"):
        Task.parse(text)


def test_stage_arithmetic_for_four_partitions():
    assert [partition_of(s, 4) for s in range(1, 9)] == [1, 2, 3, 4, 4, 3, 2, 1]
    assert [pair_stage(s, 4) for s in range(1, 9)] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert stage_of(3, 4, forward=False) == 6
    assert Task(2, 5).is_forward(4) is False
