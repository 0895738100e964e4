import pytest

from splitnet.plan.rules import check_placement

P4_OWNER1 = ["1_1", "1_2", "1_3", "1_4", "1_5", "1_6", "1_7", "1_8"]
P4_OWNER2 = ["2_1", "2_2", "2_3", "2_4", "2_5", "2_6", "2_7", "2_8"]


def rules_of(lists, n=None, p=4, **kw):
    _, violations = check_placement(lists, len(lists) if n is None else n, p, "CURRENT_MODEL=CNN", **kw)
    return violations


def test_all_local_two_clients_is_valid():
    assert rules_of([P4_OWNER1, P4_OWNER2]) == []


def test_helper_without_own_tasks_is_allowed():
    lists = [["1_1", "1_4", "1_5", "1_8"], ["1_2", "1_3", "1_6", "1_7"]]
    placement, violations = check_placement(lists, 2, 4, "CNN")
    assert violations == [] and placement.owners == (1,)


def test_task_syntax_rule():
    (v,) = rules_of([[*P4_OWNER1, "1-3"]])
    assert v.rule == "task-syntax" and "task '1-3' in client 1's list" in v.message


def test_client_count_rule():
    v = rules_of([P4_OWNER1, P4_OWNER2], n=3)
    assert [x.rule for x in v] == ["client-count"]
    assert "has 2 list(s) but NUM_CLIENTS=3" in v[0].message


def test_range_rule_names_owner_and_stage():
    v = rules_of([[*P4_OWNER1, "3_1", "1_9"], P4_OWNER2])
    messages = " | ".join(x.message for x in v if x.rule == "range")
    assert "owner 3 is not a client (expected 1..2)" in messages
    assert "stage 9 is beyond 8" in messages


def test_config_for_another_partition_count_is_reported_once():
    v = rules_of([P4_OWNER1, P4_OWNER2], p=18)
    assert len(v) == 1 and v[0].rule == "range"
    assert v[0].message.startswith("config has 4 partitions (8 stages), CURRENT_MODEL=CNN has 18")


def test_coverage_reports_missing_and_duplicate():
    lists = [P4_OWNER1[:-1], [*P4_OWNER2, "1_3"]]
    rules = {(x.rule, x.message.split(" (")[0]) for x in rules_of(lists)}
    assert ("coverage", "task '1_8'") in rules
    assert ("coverage", "task '1_3'") in rules


def test_pairing_rule():
    lists = [[t for t in P4_OWNER1 if t != "1_6"], [*P4_OWNER2, "1_6"]]
    (v,) = rules_of(lists)
    assert v.rule == "pairing" and "'1_3'" in v.message and "'1_6' runs on client 2" in v.message


def test_explicit_pairing_must_be_canonical():
    assert rules_of([P4_OWNER1], pair_stages=[[1, 8], [2, 7], [3, 6], [4, 5]]) == []
    assert rules_of([P4_OWNER1], pair_stages={4: 5, 3: 6, 2: 7, 1: 8}) == []
    (v,) = rules_of([P4_OWNER1], pair_stages=[[1, 7], [2, 8], [3, 6], [4, 5]])
    assert v.rule == "pairing" and "expected [[1, 8], [2, 7], [3, 6], [4, 5]]" in v.message


@pytest.mark.parametrize("pairs", [
    {1: 8, 2: 7, 3: 6, 4: 5, 5: 4, 6: 3, 7: 2, 8: 1},  # the old README's mapping
    [[1, 8], [8, 1], [2, 7], [7, 2], [3, 6], [6, 3], [4, 5], [5, 4]],
    {"1": 8, "8": 1, "2": 7, "7": 2, "3": 6, "6": 3, "4": 5, "5": 4},  # JSON keys are strings
    [[8, 1], [7, 2], [6, 3], [5, 4]],
    [[1, 8], [8, 1], [2, 7], [3, 6], [4, 5]],
])
def test_explicit_pairing_may_name_each_pair_in_either_or_both_directions(pairs):
    assert rules_of([P4_OWNER1], pair_stages=pairs) == []


@pytest.mark.parametrize("pairs, problem", [
    ({1: 8, 2: 7, 3: 6, 4: 5, 5: 4, 6: 3, 7: 1, 8: 2}, "7 ↔ 1 is not a pair"),
    ([[1, 8], [2, 7], [3, 6]], "the pair of stage 4 is missing"),
    ([[1, 8], [1, 8], [2, 7], [3, 6], [4, 5]], "1 ↔ 8 is given twice"),
    ([[1, 8], [2, 7], [3, 6], [4, 5], [9, 0]], "9 ↔ 0 is not a pair"),
    ("1-8", "expected a list of [stage, stage] pairs or a {stage: stage} mapping"),
])
def test_a_different_pairing_is_refused_saying_what_is_wrong(pairs, problem):
    (v,) = rules_of([P4_OWNER1], pair_stages=pairs)
    assert v.rule == "pairing" and problem in v.message
    assert "expected [[1, 8], [2, 7], [3, 6], [4, 5]]" in v.message


@pytest.mark.parametrize("partition, stages", [(1, ("1_1", "1_8")), (4, ("1_4", "1_5"))])
def test_colocation_rule(partition, stages):
    lists = [[t for t in P4_OWNER1 if t not in stages], P4_OWNER2 + list(stages)]
    v = rules_of(lists)
    assert {x.rule for x in v} == {"co-location"} and len(v) == 2
    assert "must run on its owner, client 1" in v[0].message


def test_data_shards_rule():
    (v,) = rules_of([P4_OWNER1, P4_OWNER2], dataset_n_splits=1)
    assert v.rule == "data-shards"


@pytest.mark.parametrize("lists", [[[]], [[], []]])
def test_a_plan_without_a_data_owner_is_refused(lists):
    (v,) = rules_of(lists)
    assert v.rule == "data-owners" and "no data owner" in v.message and "'1_8'" in v.message
