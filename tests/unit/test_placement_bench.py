"""bench placement's pure parts: calibration fits measured rounds, the fastest round counts."""

from dataclasses import replace

import pytest

from splitnet.bench.placement import (
    MODELS,
    SEED_EXAMPLE,
    _env_text,
    _measured,
    _offload,
    all_local,
    calibrate,
)
from splitnet.bench.placement_fit import compute_seconds, step_cpu
from splitnet.config.catalog import num_partitions
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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_bench_model_has_four_partitions_so_the_seed_example_applies(name):
    model = MODELS[name]
    assert num_partitions(model.model) == 4
    assert check_placement(SEED_EXAMPLE, 5, 4, model.model)[1] == []
    text = _env_text(all_local(5, 4), [1, 1, 8, 8, 1], 3, model.epochs, model.batch_size,
                     model=model)
    assert f"CURRENT_MODEL={model.model}\n" in text
    assert f"CURRENT_DATASET={model.dataset}\n" in text
    assert "CLIENT_SPEED=[1,1,0.125,0.125,1]" in text


def test_all_local_lists_every_owner_stage_at_home_for_any_partition_count():
    assert all_local(2, 3) == [["1_1", "1_2", "1_3", "1_4", "1_5", "1_6"],
                               ["2_1", "2_2", "2_3", "2_4", "2_5", "2_6"]]
    assert _offload(all_local(5, 6), 6) == {}
    assert check_placement(all_local(3, 6), 3, 6, "BERT")[1] == []


def test_offloads_are_read_at_the_given_partition_count():
    # P = 3: stages 4..6 are backward, so only stage 2 (forward) on client 2 is an offload
    lists = [["1_1", "1_3", "1_4", "1_6"], ["1_2", "1_5", "2_1", "2_2", "2_3", "2_4", "2_5",
                                            "2_6"]]
    assert _offload(lists, 3) == {(1, 2): 2}


def test_step_cpu_is_the_median_round_of_every_clients_compute_cpu_after_the_first(tmp_path):
    header = "client,owner,stage,batch,round,start,end,kind,peer,bytes,cpu\n"
    (tmp_path / "timeline-client1.csv").write_text(
        header + "1,1,1,0,0,0,1,compute,,0,5.0\n1,1,1,0,1,0,1,compute,,0,0.25\n"
        "1,1,5,0,1,0,1,compute,,0,0.25\n1,1,1,0,2,0,1,compute,,0,0.75\n"
        "1,1,1,0,3,0,1,compute,,0,0.5\n1,1,1,0,1,0,1,transfer,2,9,0\n")
    (tmp_path / "timeline-client2.csv").write_text(
        header + "2,2,1,0,1,0,1,compute,,0,0.5\n2,2,1,0,2,0,1,compute,,0,0.5\n"
        "2,2,1,0,3,0,1,compute,,0,0.5\n")
    (tmp_path / "timeline.csv").write_text(header + "2,2,1,0,1,0,1,compute,,0,99\n")
    # rounds 1..3: CPU 1.0, 1.25, 1.0 in 3, 2, 2 steps (round 0 is the warm-up)
    assert step_cpu(tmp_path) == (pytest.approx(1.0), 2.0)
    old = tmp_path / "old"
    old.mkdir()
    (old / "timeline-client1.csv").write_text(
        "client,owner,stage,batch,round,start,end,kind,peer,bytes\n1,1,1,0,1,0,1,compute,,0\n")
    assert step_cpu(old) == (0.0, 0.0)


def test_calibration_turns_all_locals_step_cpu_into_the_cpu_in_a_second_of_compute():
    owners = (1, 2, 3, 4, 5)
    batches = dict.fromkeys(owners, 9)
    work = compute_seconds(COSTS, batches)
    assert work == pytest.approx(45 * (sum(COSTS.forward) + sum(COSTS.backward)))
    # the truth: a profiled second is 0.6 s of runtime CPU, stretched to 0.9 s of wall by the host
    truth = replace(COSTS, forward=tuple(t * 0.9 for t in COSTS.forward),
                    backward=tuple(t * 0.9 for t in COSTS.backward), message_cpu=0.0006)
    measured = [(o, evaluate(5, 4, owners, o, truth, 9, 1).seconds)
                for o in ({}, _offload(SEED_EXAMPLE))]
    overheads, worst = calibrate(COSTS, owners, batches, measured, cpu=0.6 * work)
    assert worst < 0.002
    assert overheads.scale == pytest.approx(0.9, rel=1e-4)
    assert overheads.compute_cpu == pytest.approx(0.6 / 0.9, rel=1e-4)
    assert overheads.message_cpu == pytest.approx(0.0006, abs=4e-5)
    # without the step CPU, compute_cpu stays as given (1: a slowed step is compute / speed)
    assert calibrate(COSTS, owners, batches, measured)[0].compute_cpu == 1.0
