"""Round checkpoints: bit-exact round trips, keep-last-K, corrupt ones skipped, other plans refused."""

import json
import logging
import os
import pickle

import pytest
import torch

from splitnet.errors import PlanMismatch
from splitnet.learning.checkpoints import CheckpointStore
from splitnet.runtime import Replicas
from splitnet.runtime.snapshot import replicas_snapshot, restore_replicas

from ..conftest import plan_of


def store_of(plan, folder, keep=2, client=3):
    return CheckpointStore(folder, client, plan.fingerprint, plan.facts(), keep)


def trained(plan, parts, optimizer, steps=2, seed=0):
    """Client 3's replicas after ``steps`` optimizer steps on seeded gradients."""
    replicas = Replicas(plan, 3, parts, optimizer, 0.01)
    step(replicas, steps, seed)
    return replicas


def step(replicas, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for segment in replicas.segments:
            for param in segment.module.parameters():
                param.grad = torch.randn(param.shape, generator=generator)
            segment.optimizer.step()


def assert_same(a, b):
    sa, sb = a.states(), b.states()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    for x, y in zip(a.segments, b.segments, strict=True):
        ox, oy = x.optimizer.state_dict(), y.optimizer.state_dict()
        assert ox["param_groups"] == oy["param_groups"]
        assert ox["state"].keys() == oy["state"].keys()
        for param, entries in ox["state"].items():
            assert entries.keys() == oy["state"][param].keys()
            assert all(torch.equal(v, oy["state"][param][k]) for k, v in entries.items())


@pytest.mark.parametrize("optimizer", ["SGD", "ADAM", "ADAMW"])
def test_replicas_and_optimizers_round_trip_bit_for_bit(plan, parts, tmp_path, optimizer):
    replicas = trained(plan, parts, optimizer)
    store = store_of(plan, tmp_path)
    store.write(4, *replicas_snapshot(replicas))
    checkpoint = store.latest()
    assert checkpoint is not None and (checkpoint.client, checkpoint.round) == (3, 4)
    fresh = Replicas(plan, 3, parts, optimizer, 0.01)
    restore_replicas(fresh, checkpoint.tensors, checkpoint.extra)
    assert_same(replicas, fresh)
    if optimizer != "SGD":
        assert any(k.startswith("optimizer/") for k in checkpoint.tensors)
    step(replicas, 2, seed=1)  # both go on alike: the state is all there
    step(fresh, 2, seed=1)
    assert_same(replicas, fresh)


def test_only_the_last_keep_checkpoints_stay(plan, parts, tmp_path):
    store = store_of(plan, tmp_path, keep=2)
    tensors, extra = replicas_snapshot(trained(plan, parts, "SGD"))
    for round_ in range(5):
        store.write(round_, tensors, extra)
    assert store.rounds() == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "client3-round000003.json", "client3-round000003.safetensors",
        "client3-round000004.json", "client3-round000004.safetensors"]
    other = store_of(plan, tmp_path, client=4)  # clients may share a folder (splitnet local)
    other.write(0, tensors, extra)
    assert store.rounds() == [3, 4] and other.rounds() == [0]


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "fifo", "missing"])
def test_a_damaged_checkpoint_is_skipped_for_the_one_before(plan, parts, tmp_path, caplog,
                                                            damage):
    store = store_of(plan, tmp_path)
    old = trained(plan, parts, "ADAM", steps=1)
    store.write(0, *replicas_snapshot(old))
    store.write(1, *replicas_snapshot(trained(plan, parts, "ADAM", steps=2)))
    tensors, manifest = tmp_path / "client3-round000001.safetensors", tmp_path / \
        "client3-round000001.json"
    data = tensors.read_bytes()
    if damage == "truncate":
        tensors.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        tensors.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "manifest":
        manifest.write_text(manifest.read_text()[:40])
    elif damage == "fifo":
        tensors.unlink()
        os.mkfifo(tensors)
    else:
        tensors.unlink()
    with caplog.at_level(logging.WARNING, "splitnet.checkpoints"):
        checkpoint = store.latest()
    assert checkpoint is not None and checkpoint.round == 0
    fresh = Replicas(plan, 3, parts, "ADAM", 0.01)
    restore_replicas(fresh, checkpoint.tensors, checkpoint.extra)
    assert_same(old, fresh)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "client3-round000001.json skipped" in warning and "\n" not in warning


def test_no_checkpoint_is_none(plan, tmp_path):
    assert store_of(plan, tmp_path / "absent").latest() is None


def test_a_checkpoint_of_another_plan_is_refused_naming_both(plan, parts, tmp_path):
    other = plan_of("cnn_cross_offload.env", SEED="7")
    store_of(other, tmp_path).write(0, *replicas_snapshot(trained(other, parts, "SGD")))
    with pytest.raises(PlanMismatch) as info:
        store_of(plan, tmp_path).latest()
    text = str(info.value)
    assert plan.fingerprint in text and other.fingerprint in text
    assert "seed (this run: 42, the checkpoint: 7)" in text and "RESUME=never" in text


def test_nothing_is_pickled(plan, parts, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    store = store_of(plan, tmp_path)
    store.write(0, *replicas_snapshot(trained(plan, parts, "ADAM")))
    assert store.latest() is not None
    manifest = json.loads((tmp_path / "client3-round000000.json").read_text())
    assert manifest["fingerprint"] == plan.fingerprint and manifest["format"] == 1
    header = (tmp_path / "client3-round000000.safetensors").read_bytes()
    assert json.loads(header[8:8 + int.from_bytes(header[:8], "little")])  # safetensors
