"""Round checkpoints of a whole run on the in-memory transport: kept, loadable, harmless."""

import csv

import torch

from splitnet.learning.checkpoints import CheckpointStore
from splitnet.learning.data import dataset_spec
from splitnet.learning.models import build_partitions
from splitnet.node.checkpointing import AVERAGED, Checkpointer
from splitnet.plan.plan import build_plan
from splitnet.runtime import Replicas
from splitnet.runtime.snapshot import WEIGHTS, restore_replicas

from .test_round import SMALL, build, errors, final_model, run

ADAM = {**SMALL, "TRAINING_NUM_ROUNDS": "3", "OPTIMIZER": "ADAM", "LEARNING_RATE": "0.01",
        "CHECKPOINT_KEEP": "2"}


def test_every_client_keeps_its_last_rounds_and_they_load_back_into_the_final_model(tmp_path):
    folder = tmp_path / "checkpoints"
    nodes, _ = build({**ADAM, "CHECKPOINT_DIR": str(folder)}, tmp_path)
    results = run(nodes)
    assert not errors(results), results
    model = final_model(tmp_path)
    latest = {}
    for node in nodes:
        s = node.settings.training
        plan = build_plan(s)
        store = CheckpointStore(folder, node.me, plan.fingerprint, plan.facts(), 2)
        assert store.rounds() == [1, 2], node.me
        checkpoint = store.latest()
        assert checkpoint is not None and checkpoint.round == 2
        assert checkpoint.extra["next_round"] == 3
        latest[node.me] = checkpoint.extra["latest_batches"]
        assert any(key.startswith("optimizer/") for key in checkpoint.tensors)  # Adam's state
        fresh = Replicas(plan, node.me, build_partitions(s.model, dataset_spec(s), s.seed + 1),
                         s.optimizer, s.learning_rate)
        restore_replicas(fresh, checkpoint.tensors, checkpoint.extra)
        states = fresh.states()
        assert states and all(
            torch.equal(value, model[key.split("/", 1)[1]]) for key, value in states.items())
        assert all(torch.equal(checkpoint.tensors[WEIGHTS + key], value)
                   for key, value in states.items())
    # every batch passes every partition: after a round an owner's latest batch is the same
    # wherever its partitions run (THREE: client 3 helps owner 2, client 1 helps owner 3)
    assert latest[1].keys() == {"1", "3"} and latest[2].keys() == {"2"}
    assert latest[3].keys() == {"2", "3"}
    assert latest[2]["2"] == latest[3]["2"] > 0 and latest[3]["3"] == latest[1]["3"] > 0
    aggregator = CheckpointStore(folder, 1, plan.fingerprint, plan.facts(), 2).latest()
    assert aggregator is not None
    averaged = {key[len(AVERAGED):]: value for key, value in aggregator.tensors.items()
                if key.startswith(AVERAGED)}
    assert averaged.keys() == model.keys()
    assert all(torch.equal(averaged[key], model[key]) for key in model)
    with open(tmp_path / "latest" / "metrics.csv") as handle:
        written = list(csv.DictReader(handle))
    rows = aggregator.extra["rows"]
    assert [row["round"] for row in rows] == [1, 2, 3]
    assert [str(row["test_accuracy"]) for row in rows] == [r["test_accuracy"] for r in written]
    assert "rows" not in CheckpointStore(folder, 2, plan.fingerprint, plan.facts(), 2) \
        .latest().extra


def test_checkpoints_leave_training_unchanged(tmp_path, monkeypatch):
    nodes, _ = build(ADAM, tmp_path / "with")
    assert not errors(run(nodes))
    monkeypatch.setattr(Checkpointer, "take", lambda self, round_, model: None)
    nodes, _ = build(ADAM, tmp_path / "without")
    assert not errors(run(nodes))
    assert not (tmp_path / "without" / "checkpoints").exists()
    assert len(list((tmp_path / "with" / "checkpoints").glob("*.json"))) == 6
    a, b = final_model(tmp_path / "with"), final_model(tmp_path / "without")
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    first_rows = [(tmp_path / name / "latest" / "metrics.csv").read_text().splitlines()[1]
                  for name in ("with", "without")]
    assert first_rows[0].split(",")[:4] == first_rows[1].split(",")[:4]


def test_a_checkpoint_that_cannot_be_written_is_one_warning_and_the_run_completes(
        tmp_path, caplog):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    values = {**ADAM, "CHECKPOINT_DIR": str(tmp_path / "ok")}
    nodes, _ = build(values, tmp_path)
    for node in nodes:  # the folder breaks after the settings were validated
        object.__setattr__(node.settings.recovery, "checkpoint_dir", str(blocked / "sub"))
    results = run(nodes)
    assert not errors(results), results
    warnings = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
    assert len(warnings) == 9 and all("\n" not in w for w in warnings)
    assert "client 2: checkpoint of round 0 not written to" in " ".join(warnings)


def test_checkpoint_keep_0_writes_none_and_trains_the_same_model(tmp_path):
    with_checkpoints = tmp_path / "with"
    nodes, _ = build({**ADAM, "CHECKPOINT_DIR": str(with_checkpoints / "checkpoints")},
                     with_checkpoints)
    assert not errors(run(nodes))
    assert list((with_checkpoints / "checkpoints").glob("*.json"))
    without = tmp_path / "without"
    nodes, _ = build({**ADAM, "CHECKPOINT_KEEP": "0",
                      "CHECKPOINT_DIR": str(without / "checkpoints")}, without)
    assert not errors(run(nodes))
    assert not (without / "checkpoints").exists()
    expected, model = final_model(with_checkpoints), final_model(without)
    assert model.keys() == expected.keys()
    assert all(torch.equal(model[key], expected[key]) for key in expected)
