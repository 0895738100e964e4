"""The round simulator: hand-checkable cases, and the search over placements."""

import math

import pytest

from splitnet.plan.generate import generate_lists
from splitnet.plan.rules import check_placement
from splitnet.plan.search import evaluate, search
from splitnet.plan.simulate import Costs, predict
from splitnet.plan.task import Task

FWD = (1.0, 2.0, 3.0, 4.0)
BWD = (10.0, 20.0, 30.0, 40.0)
SIZES = (1000, 2000, 3000, 4)


def _tasks(lists):
    return [[Task.parse(t) for t in tasks] for tasks in lists]


def _costs(n, speed=None, bandwidth=math.inf, rtt=0.0, **extra):
    return Costs(FWD, BWD, SIZES, tuple(speed or [1.0] * n), (bandwidth,) * n, rtt, **extra)


def test_a_chain_on_one_client_takes_the_sum_of_its_compute():
    lists = generate_lists(1, 4)
    prediction = predict(_tasks(lists), 4, _costs(1), batches=3)
    assert prediction.seconds == pytest.approx(3 * (sum(FWD) + sum(BWD)))
    assert prediction.messages == 0


def test_speed_divides_compute_time():
    lists = generate_lists(1, 4)
    assert predict(_tasks(lists), 4, _costs(1, speed=[0.5]), 1).seconds == pytest.approx(
        2 * (sum(FWD) + sum(BWD)))


def test_a_transfer_adds_bytes_over_bandwidth_plus_half_the_rtt():
    # owner 1's partitions 2-3 on client 2: activation 1→2 (1000 B), 3→1 (3000 B),
    # gradient 1→2 (3000 B), 2→1 (1000 B): four messages.
    lists = generate_lists(2, 4, owners=[1], offload={(1, 2): 2, (1, 3): 2})
    compute = sum(FWD) + sum(BWD)
    prediction = predict(_tasks(lists), 4, _costs(2, bandwidth=1000.0, rtt=0.2), 1)
    assert prediction.messages == 4
    assert prediction.seconds == pytest.approx(compute + (1000 + 3000 + 3000 + 1000) / 1000
                                               + 4 * 0.1)


def test_overheads_are_added_per_message_step_and_round():
    lists = generate_lists(2, 4, owners=[1], offload={(1, 2): 2, (1, 3): 2})
    base = predict(_tasks(lists), 4, _costs(2), 1).seconds
    more = predict(_tasks(lists), 4, _costs(2, message_overhead=0.5, step_overhead=0.25,
                                            round_overhead=7.0), 1).seconds
    # steps: 1_1, 1_2(fwd 2-3), 1_4 (fwd 4 + loss + bwd 4), 1_6 (bwd 3-2), 1_8 (bwd 1) = 5
    assert more - base == pytest.approx(4 * 0.5 + 5 * 0.25 + 7.0)
    # message CPU: 1_1 sends, 1_2 receives and sends, 1_4 both, 1_6 both, 1_8 receives: 8
    cpu = predict(_tasks(lists), 4, _costs(2, message_cpu=0.125), 1).seconds
    assert cpu - base == pytest.approx(8 * 0.125)


def test_step_overhead_is_compute_and_scales_with_speed():
    lists = generate_lists(1, 4)
    slow = predict(_tasks(lists), 4, _costs(1, speed=[0.5], step_overhead=1.0), 1).seconds
    assert slow == pytest.approx(2 * (sum(FWD) + sum(BWD) + 1.0))


def test_pick_order_is_respected_when_two_tasks_are_ready():
    # Client 3 runs owner 1's and owner 2's partition 2-3; both activations arrive at once.
    # Listed with owner 2 first, owner 2's batch finishes first.
    offload = {(1, 2): 3, (1, 3): 3, (2, 2): 3, (2, 3): 3}
    lists = generate_lists(3, 4, owners=[1, 2], offload=offload)
    costs = _costs(3)
    ordered = predict(_tasks(lists), 4, costs, 1).seconds
    lists[2] = sorted(lists[2], key=lambda t: (Task.parse(t).owner != 2, Task.parse(t).stage))
    swapped = predict(_tasks(lists), 4, costs, 1).seconds
    # The round ends when the later owner finishes: same total, by symmetry ...
    assert ordered == pytest.approx(swapped)
    # ... but a speed difference breaks the tie: the slow owner 2 should go first.
    slow2 = _costs(3, speed=[1.0, 0.5, 1.0])
    assert predict(_tasks(lists), 4, slow2, 1).seconds <= predict(
        _tasks(generate_lists(3, 4, owners=[1, 2], offload=offload)), 4, slow2, 1).seconds


def test_pipeline_depth_overlaps_an_owners_batches():
    lists = generate_lists(2, 4, owners=[1], offload={(1, 2): 2, (1, 3): 2})
    one = predict(_tasks(lists), 4, _costs(2), 4, depth=1).seconds
    two = predict(_tasks(lists), 4, _costs(2), 4, depth=2).seconds
    assert two < one


def test_cores_cap_serialises_clients_that_share_a_host():
    lists = generate_lists(2, 4)
    free = predict(_tasks(lists), 4, _costs(2), 1).seconds
    shared = predict(_tasks(lists), 4, _costs(2, cores=1), 1).seconds
    assert free == pytest.approx(sum(FWD) + sum(BWD))
    assert shared == pytest.approx(2 * free)


def test_search_obeys_every_rule_and_never_beats_all_local_in_the_wrong_direction():
    costs = _costs(5, speed=[1, 1, 0.25, 0.25, 1], bandwidth=1e9)
    result = search(5, 4, [1, 2, 3, 4, 5], costs, batches=5, budget_seconds=5)
    assert result.best.seconds <= result.all_local.seconds
    assert result.best.seconds < 0.9 * result.all_local.seconds  # offloading helps here
    _, violations = check_placement([list(x) for x in result.best.lists], 5, 4, "CNN")
    assert violations == []
    moved_owners = {o for (o, _q) in result.best.offload}
    assert moved_owners & {3, 4}  # the slow owners' middles moved away


def test_search_keeps_all_local_when_links_are_slow():
    costs = _costs(3, speed=[1, 1, 0.9], bandwidth=10.0, rtt=1.0)
    result = search(3, 4, [1, 2, 3], costs, batches=2, budget_seconds=5)
    assert result.best.offload == {}
    assert result.best.seconds == result.all_local.seconds


def test_evaluate_drops_moves_home_and_predicts():
    costs = _costs(2)
    candidate = evaluate(2, 4, [1, 2], {(1, 2): 1}, costs, 1, 1)
    assert candidate.offload == {}
    assert candidate.seconds == pytest.approx(sum(FWD) + sum(BWD))


def test_a_spent_budget_stops_the_search_with_a_valid_placement_no_worse_than_all_local():
    costs = _costs(5, speed=[1, 1, 0.25, 0.25, 1], bandwidth=1e9)
    start = {(1, 2): 3, (1, 3): 3}  # a poor start: owner 1's middle on a slow client
    result = search(5, 4, [1, 2, 3, 4, 5], costs, batches=5, start=start, budget_seconds=0)
    assert not result.complete and result.evaluated == 2
    assert result.best.seconds <= result.all_local.seconds
    assert check_placement([list(x) for x in result.best.lists], 5, 4, "CNN")[1] == []


def test_message_cpu_is_not_slowed_with_compute():
    lists = generate_lists(2, 4, owners=[1], offload={(1, 2): 2, (1, 3): 2})
    base = predict(_tasks(lists), 4, _costs(2, speed=[0.5, 1.0]), 1).seconds
    cpu = predict(_tasks(lists), 4, _costs(2, speed=[0.5, 1.0], message_cpu=0.125), 1).seconds
    # 8 messages handled (see above), each 0.125 s whatever the client's compute speed
    assert cpu - base == pytest.approx(8 * 0.125)


def test_a_slowed_client_uses_its_share_of_a_core_on_a_shared_host():
    lists = generate_lists(3, 4)  # all local, one batch each
    work = sum(FWD) + sum(BWD)
    # two clients at speed 0.5 use half a core each, the fast one a whole core: with one core
    # all three run at half speed (demand 2) until the fast one is done (2x work), then the
    # slowed ones alone (demand 1) finish their last work at full speed (3x work)
    costs = _costs(3, speed=[0.5, 0.5, 1.0], cores=1)
    assert predict(_tasks(lists), 4, costs, 1).seconds == pytest.approx(3 * work)
    # two cores: the fast client runs beside the two half-core ones
    two = _costs(3, speed=[0.5, 0.5, 1.0], cores=2)
    assert predict(_tasks(lists), 4, two, 1).seconds == pytest.approx(2 * work)
    # three full-speed clients share two cores as a host shares them: 3 x work on 2 cores
    full = _costs(3, cores=2)
    assert predict(_tasks(lists), 4, full, 1).seconds == pytest.approx(1.5 * work)


@pytest.mark.parametrize("compute_cpu", [1.0, 0.5, 1.5])
def test_a_slowed_step_waits_out_its_cpu_not_its_stretched_compute(compute_cpu):
    # Note: slept CPU. One client at speed 0.25: each batch is its compute plus 3x its CPU.
    lists = generate_lists(1, 4)
    work = sum(FWD) + sum(BWD)
    prediction = predict(_tasks(lists), 4, _costs(1, speed=[0.25], compute_cpu=compute_cpu), 2)
    assert prediction.seconds == pytest.approx(2 * work * (1 + 3 * compute_cpu))
    # at full speed compute_cpu changes nothing
    assert predict(_tasks(lists), 4, _costs(1, compute_cpu=compute_cpu), 2).seconds == \
        pytest.approx(2 * work)


def test_round_cpu_is_spread_over_the_clients_steps():
    lists = generate_lists(2, 4)  # all local: each owner runs 2 steps a batch
    plain = predict(_tasks(lists), 4, _costs(2), batches=3)
    loaded = predict(_tasks(lists), 4, _costs(2, round_cpu=(6.0, 0.0)), batches=3)
    assert loaded.busy[0] == pytest.approx(plain.busy[0] + 6.0)
    assert loaded.busy[1] == pytest.approx(plain.busy[1])
    assert loaded.seconds == pytest.approx(plain.seconds + 6.0)
