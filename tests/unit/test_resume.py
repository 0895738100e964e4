"""Resuming a run from round checkpoints on the in-memory transport (RESUME=auto)."""

import csv
import logging

import pytest
import torch
from prometheus_client import generate_latest

from splitnet.errors import ConfigError, PlanMismatch, ProtocolError
from splitnet.learning.checkpoints import CheckpointStore
from splitnet.node.resume import MAX_ANNOUNCED, ROUNDS_FACT, Resume
from splitnet.telemetry.metrics import Metrics

from .test_round import SMALL, build, errors, final_model, run

SGD = {**SMALL, "TRAINING_NUM_ROUNDS": "3", "CHECKPOINT_KEEP": "5"}
ADAM = {**SGD, "OPTIMIZER": "ADAM", "LEARNING_RATE": "0.01"}
SAME = ("round", "test_accuracy", "f1_macro", "test_loss", "train_loss", "samples")


def metrics(tmp_path):
    with open(tmp_path / "latest" / "metrics.csv") as handle:
        return [{key: row[key] for key in SAME} for row in csv.DictReader(handle)]


def timeline_rows(tmp_path):
    """Return every client's timeline rows as (client, round, task, batch, kind), sorted."""
    rows = []
    for path in (tmp_path / "latest").glob("timeline-client*.csv"):
        with open(path) as handle:
            rows += [(row["client"], int(row["round"]), f"{row['owner']}_{row['stage']}",
                      row["batch"], row["kind"]) for row in csv.DictReader(handle)]
    return sorted(rows)


def timeline_rounds(tmp_path):
    return {row[1] for row in timeline_rows(tmp_path)}


def stopped_after(values, tmp_path, monkeypatch, last):
    """Run to the end writing no checkpoint after round ``last``, then unfinish the run.

    What a kill of every client just after round ``last``'s checkpoints leaves, plus the later
    rows and models, which the resumed run must replace (never duplicate). Return the final
    model and metrics rows: the uninterrupted run's, as training is deterministic.
    """
    write = CheckpointStore.write

    def up_to_last(self, round_, tensors, extra=None):
        return write(self, round_, tensors, extra) if round_ <= last else self.folder

    monkeypatch.setattr(CheckpointStore, "write", up_to_last)
    nodes, _ = build(values, tmp_path)
    assert not errors(run(nodes))
    monkeypatch.setattr(CheckpointStore, "write", write)
    (tmp_path / "latest" / "summary.json").unlink()
    return final_model(tmp_path), metrics(tmp_path)


@pytest.mark.parametrize("values", [SGD, ADAM], ids=["sgd", "adam"])
def test_a_run_stopped_after_a_round_resumes_to_the_same_model_and_rows(
        values, tmp_path, monkeypatch):
    model, rows = stopped_after(values, tmp_path, monkeypatch, last=0)
    run_folder = (tmp_path / "latest").resolve()
    uninterrupted = timeline_rows(tmp_path)
    nodes, _ = build(values, tmp_path)
    assert not errors(run(nodes))
    assert (tmp_path / "latest").resolve() == run_folder  # the same run goes on
    # every task of the run once: round 0's rows kept, rounds 1 and 2 trained again
    assert timeline_rows(tmp_path) == uninterrupted and timeline_rounds(tmp_path) == {0, 1, 2}
    resumed = final_model(tmp_path)
    assert resumed.keys() == model.keys()
    assert all(torch.equal(resumed[key], model[key]) for key in model)
    assert metrics(tmp_path) == rows and [row["round"] for row in rows] == ["1", "2", "3"]
    assert (run_folder / "summary.json").is_file()


def test_checkpoints_of_another_run_than_run_id_are_not_resumed(tmp_path, monkeypatch, caplog):
    stopped_after(SGD, tmp_path, monkeypatch, last=0)
    old = (tmp_path / "latest").resolve()
    with caplog.at_level(logging.WARNING, logger="splitnet.node"):
        assert not errors(run(build({**SGD, "RUN_ID": "a-new-run"}, tmp_path)[0]))
    assert (tmp_path / "latest").resolve() == tmp_path / "runs" / "a-new-run" != old
    assert timeline_rounds(tmp_path) == {0, 1, 2}  # trained from round 0
    assert any("not resumed" in r.getMessage() and old.name in r.getMessage()
               for r in caplog.records)


def test_a_checkpoint_of_another_plan_is_refused_at_start_unless_resume_is_never(
        tmp_path, monkeypatch):
    stopped_after(SGD, tmp_path, monkeypatch, last=0)
    other = {**SGD, "LEARNING_RATE": "0.05"}
    results = run(build(other, tmp_path)[0])
    refused = [r for r in results if isinstance(r, PlanMismatch)]
    assert refused and "learning_rate" in str(refused[0]) and "\n" not in str(refused[0])
    assert "RESUME=never" in str(refused[0])
    nodes, _ = build({**other, "RESUME": "never"}, tmp_path / "never")
    for node in nodes:
        object.__setattr__(node.settings.recovery, "checkpoint_dir", str(tmp_path / "checkpoints"))
    assert not errors(run(nodes))
    assert timeline_rounds(tmp_path / "never") == {0, 1, 2}


def test_no_round_every_client_has_starts_at_round_0(tmp_path, monkeypatch, caplog):
    stopped_after(SGD, tmp_path, monkeypatch, last=0)
    for path in (tmp_path / "checkpoints").glob("client2-*"):
        path.unlink()
    caplog.set_level(logging.INFO)
    assert not errors(run(build(SGD, tmp_path)[0]))
    assert timeline_rounds(tmp_path) == {0, 1, 2}
    assert "resumes after round" not in caplog.text


def test_checkpoints_of_a_finished_run_in_another_results_folder_are_not_resumed(
        tmp_path, caplog):
    assert not errors(run(build(SGD, tmp_path / "first")[0]))
    caplog.set_level(logging.INFO)
    values = {**SGD, "CHECKPOINT_DIR": str(tmp_path / "first" / "checkpoints")}
    assert not errors(run(build(values, tmp_path / "second")[0]))
    assert timeline_rounds(tmp_path / "second") == {0, 1, 2}  # trained again from round 0
    assert "resumes after round" not in caplog.text
    assert "their run finished" in caplog.text


def test_malformed_checkpoint_rounds_in_a_join_are_refused(tmp_path):
    store = CheckpointStore(tmp_path, 1, "f", {}, 2)
    resume = Resume(store, enabled=True, num_rounds=3)
    resume.learn(2, {ROUNDS_FACT: [0, 1]})
    for bad in ([3], [-1], ["0"], [True], "0", list(range(MAX_ANNOUNCED + 1))):
        with pytest.raises(ProtocolError, match="refused the checkpoint rounds of client 3"):
            resume.learn(3, {ROUNDS_FACT: bad})
    resume.learn(3, {})  # a client without checkpoints announces nothing
    assert resume.agree([2, 3]) is None


def test_rejoins_and_recovery_time_are_exported():
    metrics = Metrics(2)
    metrics.rejoins.labels(metrics.client).inc()
    metrics.recovery_seconds.labels(metrics.client).set(4.5)
    text = generate_latest(metrics.registry).decode()
    assert 'splitnet_rejoins_total{client="2"} 1.0' in text
    assert 'splitnet_recovery_seconds{client="2"} 4.5' in text


def _store(tmp_path, client, fingerprint="f2", accepted=("f1",)):
    return CheckpointStore(tmp_path, client, fingerprint, {}, 5, accepted=accepted)


def test_an_aggregator_that_took_over_resumes_from_the_dropped_ones_model(tmp_path):
    weights = {"weights/2/1/w": torch.ones(2)}
    old = CheckpointStore(tmp_path, 1, "f1", {}, 5)  # the lost aggregator, before the drop
    old.write(0, {**weights, "averaged/1/w": torch.full((2,), 3.0)}, {"rows": []})
    own = CheckpointStore(tmp_path, 2, "f1", {}, 5)
    own.write(0, weights)
    own.write(1, weights)  # the dropped aggregator wrote no round 1: not announced
    resume = Resume(_store(tmp_path, 2), enabled=True, num_rounds=5,
                    model_from=(_store(tmp_path, 1),))
    resume.scan()
    assert resume.own == [0]
    assert resume.agree([]) == 0
    assert resume.model_checkpoint.client == 1
    assert resume.model_checkpoint.tensors["averaged/1/w"].equal(torch.full((2,), 3.0))
    assert resume.checkpoint.client == 2 and resume.checkpoint.fingerprint == "f1"


def test_an_aggregator_that_took_over_without_any_model_says_where_it_looked(tmp_path):
    CheckpointStore(tmp_path, 2, "f1", {}, 5).write(0, {"weights/2/1/w": torch.ones(2)})
    resume = Resume(_store(tmp_path, 2), enabled=True, num_rounds=5,
                    model_from=(_store(tmp_path, 1),))
    with pytest.raises(ConfigError, match=r"CHECKPOINT_DIR=.*client 2 takes over as aggregator "
                                          r"from dropped client\(s\) 1.*rounds \[0\]"):
        resume.scan()
