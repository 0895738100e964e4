"""bench placement's pure parts: calibration fits measured rounds, the fastest round counts."""

from dataclasses import replace

import pytest

from splitnet.bench.placement import SEED_EXAMPLE, _measured, _offload, calibrate
from splitnet.ops.autoplan import Overheads
from splitnet.plan.rules import check_placement
from splitnet.plan.search import evaluate
from splitnet.plan.simulate import Costs

COSTS = Costs((0.002, 0.002, 0.0005, 0.0001), (0.003, 0.003, 0.0006, 0.0005),
              (65536, 32768, 16384, 1280), (1.0,) * 5, (float("inf"),) * 5,
              message_overhead=0.001, round_overhead=0.03, cores=2)


def test_the_seed_example_is_valid_and_its_offloads_are_read_back():
    assert check_placement(SEED_EXAMPLE, 5, 4, "CNN")[1] == []
    assert _offload(SEED_EXAMPLE) == {(4, 3): 1, (1, 3): 2, (5, 2): 3, (5, 3): 3, (3, 3): 4,
                                      (3, 2): 5, (2, 3): 5}


@pytest.mark.parametrize("depth", [1, 2])
def test_calibration_recovers_the_scale_from_all_local_then_the_message_cpu(depth):
    truth = replace(COSTS, forward=tuple(t * 0.8 for t in COSTS.forward),
                    backward=tuple(t * 0.8 for t in COSTS.backward), message_cpu=0.0006)
    owners = (1, 2, 3, 4, 5)
    measured = [(o, evaluate(5, 4, owners, o, truth, 9, depth).seconds)
                for o in ({}, _offload(SEED_EXAMPLE))]
    base = Overheads(message=0.001, round=0.03, cores=2)
    overheads, worst = calibrate(COSTS, owners, dict.fromkeys(owners, 9), measured, base, depth)
    assert worst < 0.002  # the round steps with the message CPU: the 20 us grid gets close
    assert overheads.scale == pytest.approx(0.8, rel=1e-4)
    assert overheads.message_cpu == pytest.approx(0.0006, abs=4e-5)
    assert overheads.cores == 2 and overheads.round == 0.03 and overheads.message == 0.001


def test_calibration_of_a_round_faster_than_free_messages_stays_near_zero_message_cpu():
    owners = (1, 2, 3, 4, 5)
    local = evaluate(5, 4, owners, {}, COSTS, 9, 1).seconds
    seed = evaluate(5, 4, owners, _offload(SEED_EXAMPLE), COSTS, 9, 1).seconds
    # the seed example measured 10 % faster than even free messages predict
    overheads, worst = calibrate(COSTS, owners, dict.fromkeys(owners, 9),
                                 [({}, local), (_offload(SEED_EXAMPLE), 0.9 * seed)])
    assert overheads.message_cpu <= 1e-4 and overheads.scale == pytest.approx(1, rel=1e-4)
    assert 0 < worst <= 1 / 0.9 - 1 + 1e-9  # no worse than free messages, never exact


def test_calibration_needs_all_local_first():
    with pytest.raises(ValueError, match="all-local"):
        calibrate(COSTS, (1, 2, 3, 4, 5), dict.fromkeys(range(1, 6), 9),
                  [(_offload(SEED_EXAMPLE), 1.0), ({}, 1.0)])


def test_the_fastest_round_after_the_first_counts(tmp_path):
    (tmp_path / "metrics.csv").write_text("round,round_seconds\n1,9.0\n2,1.5\n3,1.2\n")
    assert _measured(tmp_path) == 1.2
    (tmp_path / "metrics.csv").write_text("round,round_seconds\n1,9.0\n")
    assert _measured(tmp_path) == 9.0
