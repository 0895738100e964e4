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


def test_calibration_recovers_rounds_made_with_known_overheads():
    truth = replace(COSTS, forward=tuple(t * 0.8 for t in COSTS.forward),
                    backward=tuple(t * 0.8 for t in COSTS.backward),
                    step_overhead=0.001, message_cpu=0.0006)
    owners = (1, 2, 3, 4, 5)
    measured = [(o, evaluate(5, 4, owners, o, truth, 9, 1).seconds)
                for o in ({}, _offload(SEED_EXAMPLE))]
    base = Overheads(message=0.001, round=0.03, cores=2)
    overheads, worst = calibrate(COSTS, owners, dict.fromkeys(owners, 9), measured, base)
    assert worst == pytest.approx(0, abs=1e-9)
    assert overheads.cores == 2 and overheads.round == 0.03 and overheads.message == 0.001
    fitted = replace(COSTS, forward=tuple(t * overheads.scale for t in COSTS.forward),
                     backward=tuple(t * overheads.scale for t in COSTS.backward),
                     step_overhead=overheads.step, message_cpu=overheads.message_cpu)
    for offload, seconds in measured:
        assert evaluate(5, 4, owners, offload, fitted, 9, 1).seconds == pytest.approx(seconds)


def test_the_fastest_round_after_the_first_counts(tmp_path):
    (tmp_path / "metrics.csv").write_text("round,round_seconds\n1,9.0\n2,1.5\n3,1.2\n")
    assert _measured(tmp_path) == 1.2
    (tmp_path / "metrics.csv").write_text("round,round_seconds\n1,9.0\n")
    assert _measured(tmp_path) == 9.0
