"""Property tests: random valid plans validate; any single mutation is caught by the right rule."""

import contextlib

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from splitnet.config import load
from splitnet.errors import ConfigError
from splitnet.ops.prepare import prepare
from splitnet.plan.rules import check_placement
from splitnet.plan.schedule import dry_run
from splitnet.plan.task import Task, pair_stage

from ..plans import valid_lists


def rules(lists, n, p):
    return {v.rule for v in check_placement(lists, n, p, "TEST")[1]}


@given(valid_lists())
def test_random_valid_plans_validate_and_the_dry_run_completes(case):
    lists, n, p = case
    placement, violations = check_placement(lists, n, p, "TEST")
    assert violations == []
    assert dry_run(placement.client_tasks).completes


@given(valid_lists(), st.data())
def test_dropping_a_task_breaks_coverage(case, data):
    lists, n, p = case
    client = data.draw(st.sampled_from([i for i, tasks in enumerate(lists) if tasks]))
    lists[client].pop(data.draw(st.integers(0, len(lists[client]) - 1)))
    assert "coverage" in rules(lists, n, p)


@given(valid_lists(), st.data())
def test_duplicating_a_task_breaks_coverage(case, data):
    lists, n, p = case
    task = data.draw(st.sampled_from([t for tasks in lists for t in tasks]))
    lists[data.draw(st.integers(0, n - 1))].append(task)
    assert "coverage" in rules(lists, n, p)


@given(valid_lists(), st.data())
def test_moving_one_stage_of_a_pair_breaks_pairing(case, data):
    lists, n, p = case
    assume(n >= 2)
    source = data.draw(st.sampled_from([i for i, tasks in enumerate(lists) if tasks]))
    task = lists[source].pop(data.draw(st.integers(0, len(lists[source]) - 1)))
    target = data.draw(st.sampled_from([i for i in range(n) if i != source]))
    lists[target].append(task)
    assert "pairing" in rules(lists, n, p)


@given(valid_lists(), st.data())
def test_moving_an_endpoint_partition_breaks_colocation(case, data):
    lists, n, p = case
    assume(n >= 2)
    owner = data.draw(st.sampled_from(sorted({Task.parse(t).owner for x in lists for t in x})))
    stage = data.draw(st.sampled_from([1, p]))
    pair = {f"{owner}_{stage}", f"{owner}_{pair_stage(stage, p)}"}
    for tasks in lists:
        tasks[:] = [t for t in tasks if t not in pair]
    target = data.draw(st.sampled_from([i for i in range(n) if i != owner - 1]))
    lists[target].extend(sorted(pair))
    found = rules(lists, n, p)
    assert "co-location" in found and "pairing" not in found


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000))
def test_arbitrary_text_never_raises_anything_but_config_error(text):
    with contextlib.suppress(ConfigError):
        load(values={"SIMULATION_STAGES_CLIENTS": text, "NUM_CLIENTS": "2"})


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000))
def test_arbitrary_env_file_bytes_never_raise_anything_but_config_error(tmp_path, content):
    path = tmp_path / "fuzz.env"
    path.write_bytes(content)
    with contextlib.suppress(ConfigError):
        prepare(path, environ={}, env_file_required=True)


@given(st.text(alphabet="[](){}'\",_ 0123456789-a:", max_size=300))
def test_bracket_soup_never_raises_anything_but_config_error(text):
    try:
        settings = load(values={"SIMULATION_STAGES_CLIENTS": text})
    except ConfigError:
        return
    try:
        check_placement(settings.training.stages_clients, settings.training.num_clients, 4, "CNN")
    except Exception as exc:  # pragma: no cover - the assertion below explains
        raise AssertionError(f"placement check raised {exc!r} on {text!r}") from exc
