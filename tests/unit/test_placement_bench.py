"""bench placement's pure parts: the constants measured in calibration runs, the fastest round."""

import json

import pytest

from splitnet.bench.placement import MODELS, SEED_EXAMPLE, _env_text, _measured, _offload, all_local
from splitnet.bench.placement_fit import (
    _median_each,
    beside_steps,
    compute_seconds,
    measure,
    step_cpu,
)
from splitnet.config.catalog import num_partitions
from splitnet.ops.autoplan import Overheads
from splitnet.plan.rules import check_placement
from splitnet.plan.simulate import Costs, predict
from splitnet.plan.task import Task

COSTS = Costs((0.002, 0.002, 0.0005, 0.0001), (0.003, 0.003, 0.0006, 0.0005),
              (65536, 32768, 16384, 1280), (1.0,) * 5, (float("inf"),) * 5,
              message_overhead=0.001, round_overhead=0.03, cores=2)


def test_the_seed_example_is_valid_and_its_offloads_are_read_back():
    assert check_placement(SEED_EXAMPLE, 5, 4, "CNN")[1] == []
    assert _offload(SEED_EXAMPLE) == {(4, 3): 1, (1, 3): 2, (5, 2): 3, (5, 3): 3, (3, 3): 4,
                                      (3, 2): 5, (2, 3): 5}


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


def test_beside_steps_is_each_clients_process_cpu_less_its_steps_median_after_round_0(tmp_path):
    header = "client,owner,stage,batch,round,start,end,kind,peer,bytes,cpu\n"
    (tmp_path / "timeline-client1.csv").write_text(
        header + "1,1,1,0,0,0,1,compute,,0,0.5\n1,1,1,0,1,0,1,compute,,0,0.25\n"
        "1,1,5,0,1,0,1,compute,,0,0.25\n1,1,1,0,2,0,1,compute,,0,0.5\n"
        "1,1,1,0,1,0,1,transfer,2,9,0\n")
    (tmp_path / "timeline-client2.csv").write_text(header + "2,1,2,0,1,0,1,compute,,0,2.0\n")
    (tmp_path / "client-1.json").write_text(
        '{"process_cpu_seconds": {"0": 9.0, "1": 0.75, "2": 1.5}}')
    (tmp_path / "client-2.json").write_text(
        '{"process_cpu_seconds": {"0": 1.0, "1": 1.0, "2": 0.25}}')
    # client 1: rounds 1, 2 beside 0.25 and 1.0; client 2: 1.0 - 2.0 (clipped to 0), 0.25
    assert beside_steps(tmp_path, 2) == (pytest.approx(0.625), pytest.approx(0.125))
    (tmp_path / "client-2.json").write_text('{"client": 2}')  # written before the field
    assert beside_steps(tmp_path, 2) == ()
    assert beside_steps(tmp_path, 3) == ()


def test_median_each_takes_each_clients_median_and_nothing_when_a_run_lacks_it():
    assert _median_each([(1.0, 4.0), (3.0, 2.0), (2.0, 9.0)]) == (2.0, 4.0)
    assert _median_each([(1.0, 4.0), ()]) == ()
    assert _median_each([]) == ()


def _run_folder(path, step, beside, steps=1, rounds=3):
    """A run folder whose client c used ``step[c-1]`` s in ``steps`` steps a round and
    ``beside[c-1]`` s beside them."""
    path.mkdir()
    header = "client,owner,stage,batch,round,start,end,kind,peer,bytes,cpu\n"
    for c, (cpu, extra) in enumerate(zip(step, beside, strict=True), 1):
        rows = "".join(f"{c},{c},1,{b},{r},0,1,compute,,0,{cpu / steps}\n"
                       for r in range(rounds) for b in range(steps))
        (path / f"timeline-client{c}.csv").write_text(header + rows)
        process = {str(r): cpu + extra + (5.0 if r == 0 else 0.0) for r in range(rounds)}
        (path / f"client-{c}.json").write_text(json.dumps({"process_cpu_seconds": process}))
    return path


def test_measure_reads_every_constant_from_the_calibration_runs(tmp_path):
    owners = (1, 2, 3, 4, 5)
    batches = dict.fromkeys(owners, 9)
    work = compute_seconds(COSTS, batches)
    home = (0.3, 0.05, 0.05, 0.05, 0.05)
    # all-local: one step a round per client; the least step CPU counts (run a)
    local = [_run_folder(tmp_path / "a", [0.2 * work] * 5, home),
             _run_folder(tmp_path / "b", [0.25 * work] * 5, [2 * t for t in home])]
    offload = _offload(SEED_EXAMPLE)
    tasks = [[Task.parse(t) for t in x] for x in SEED_EXAMPLE]
    messages = predict(tasks, 4, COSTS, batches).messages
    away = [t + 0.002 * messages * 2 / 5 for t in home]  # 2 ms a message each end
    # the placement with messages: 3 steps a round per client, 1 ms more CPU for each extra one
    other = [_run_folder(tmp_path / "c", [0.2 * work + 0.002] * 5, away, steps=3)]
    base = Overheads(cores=2, round=0.05)
    measured = measure(COSTS, owners, batches, local, (offload, other), base)
    assert measured.step == pytest.approx(0.001)
    assert measured.scale == pytest.approx((work - 5 * 0.001) / work, rel=1e-5)
    assert measured.round_cpu == pytest.approx(tuple(1.5 * t for t in home))  # the median run
    assert measured.message_cpu == pytest.approx(0.002 - sum(home) / 2 / (2 * messages),
                                                 rel=1e-4)
    assert measured.compute_cpu == 1.0 and measured.cores == 2 and measured.round == 0.05
    # runs written before the process CPU: no round CPU, no message CPU
    for folder in [*local, *other]:
        for facts in folder.glob("client-*.json"):
            facts.write_text("{}")
    old = measure(COSTS, owners, batches, local, (offload, other), base)
    assert old.round_cpu == () and old.message_cpu == 0.0 and old.scale == measured.scale
    # fewer steps than all-local (not the seed example): no step cost
    assert measure(COSTS, owners, batches, other, (offload, local), base).step == 0.0


def test_measure_refuses_runs_without_step_cpu_and_never_makes_compute_free(tmp_path):
    owners = (1, 2, 3, 4, 5)
    batches = dict.fromkeys(owners, 9)
    work = compute_seconds(COSTS, batches)
    home = (0.1,) * 5
    local = [_run_folder(tmp_path / "a", [0.2 * work] * 5, home)]
    # the extra steps used so much more CPU that all-local's steps would be all step cost
    other = [_run_folder(tmp_path / "b", [2 * work] * 5, home, steps=3)]
    base = Overheads(cores=2)
    measured = measure(COSTS, owners, batches, local, ({(3, 2): 1}, other), base)
    assert measured.step == 0.0 and measured.scale == pytest.approx(1.0, rel=1e-5)
    # a placement without messages: no message CPU, no division by zero
    assert measure(COSTS, owners, batches, local, ({}, other), base).message_cpu == 0.0
    for timeline in (tmp_path / "a").glob("timeline-client*.csv"):
        timeline.write_text("client,owner,stage,batch,round,start,end,kind,peer,bytes\n")
    with pytest.raises(ValueError, match="no step CPU"):
        measure(COSTS, owners, batches, local, ({(3, 2): 1}, other), base)
