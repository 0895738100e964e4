"""The plan without lost clients (FAILURE_POLICY=drop): every rule holds, shards stay."""

import pytest

from splitnet.config import load
from splitnet.plan.drop import has_quorum, moved_tasks, without
from splitnet.plan.plan import build_plan
from splitnet.plan.rules import check_placement

from ..conftest import ROOT, plan_of


@pytest.fixture
def plan():
    """The default .env's plan: five owners, middle partitions offloaded across them."""
    return build_plan(load(ROOT / ".env").training)


def test_a_lost_owner_leaves_and_what_it_ran_goes_home(plan):
    after = without(plan, [3])
    assert after.clients == (1, 2, 4, 5) and after.owners == (1, 2, 4, 5)
    assert after.tasks_of(3) == ()
    ran_on_3 = [(o, p) for (o, p), runner in plan.runners.items() if runner == 3 and o != 3]
    assert ran_on_3, "the default plan offloads to client 3"
    for owner, partition in ran_on_3:
        assert after.runner(owner, partition) == owner
    kept = {key: r for key, r in plan.runners.items() if key[0] != 3 and r != 3}
    assert all(after.runners[key] == r for key, r in kept.items())
    lists = [[str(t) for t in after.tasks_of(c)] for c in range(1, plan.num_clients + 1)]
    _, violations = check_placement(lists, plan.num_clients, plan.num_partitions, "CNN")
    assert violations == []
    assert moved_tasks(plan, after)["moved"] == [
        {"owner": o, "partition": p, "from": 3, "to": o} for o, p in sorted(ran_on_3)]


def test_owners_keep_their_shards(plan):
    after = without(plan, [2])
    assert after.num_shards == plan.num_shards
    assert all(after.shard_of(o) == plan.shard_of(o) for o in after.owners)


def test_the_lowest_survivor_takes_the_aggregator_role(plan):
    assert plan.training.server_number == 1
    assert without(plan, [1]).training.server_number == 2
    assert without(plan, [4]).training.server_number == 1


def test_fingerprints_name_the_drop_and_the_base_stays(plan):
    once = without(plan, [3])
    twice = without(once, [5])
    assert len({plan.fingerprint, once.fingerprint, twice.fingerprint,
                without(plan, [5]).fingerprint}) == 4
    assert "dropped" not in plan.facts()
    assert twice.dropped == (3, 5) and twice.ancestors == (plan.fingerprint, once.fingerprint)
    assert twice.base_fingerprint == plan.fingerprint == once.facts()["base"]
    assert without(plan, [3]).fingerprint == once.fingerprint  # the same on every survivor


def test_a_drop_that_leaves_no_owner_or_names_no_client_is_refused(plan):
    helper = plan_of("owner_and_helper.env")
    with pytest.raises(ValueError, match="no data owner is left"):
        without(helper, [1])
    with pytest.raises(ValueError, match="the run's clients are 1, 2, 4, 5"):
        without(without(plan, [3]), [3])
    with pytest.raises(ValueError, match="cannot drop client"):
        without(plan, [9])


def test_only_a_majority_goes_on_after_a_drop(plan):
    assert has_quorum(plan, [3]) and has_quorum(plan, [4, 5])
    assert not has_quorum(plan, [1, 2, 3])  # two of five may be the side cut off
    four = without(plan, [5])
    assert has_quorum(four, [3, 4])  # half, with client 1
    assert not has_quorum(four, [1, 2])  # half, without it
