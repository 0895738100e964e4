"""splitnet profile: per-partition times and sizes; profiles read back; the slowdown hook."""

import pytest
import torch

import splitnet.node.client
from splitnet.cli import main
from splitnet.config import load
from splitnet.learning.profile import Profile, profile_partitions
from splitnet.learning.slowdown import slowdown_factor
from splitnet.learning.threads import apply_client_threads
from splitnet.ops.autoplan import speed_example

from ..conftest import settings_of

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


def test_profile_times_every_partition_and_records_what_it_hands_on():
    training = settings_of("cnn_all_local.env").training
    profile = profile_partitions(training, warmup=1, iterations=2)
    assert len(profile.forward) == len(profile.backward) == 4
    assert all(t > 0 for t in profile.forward + profile.backward)
    assert profile.activation_bytes[-1] == 32 * 10 * 4  # logits: batch x classes x float32
    assert profile.model_bytes > 0 and profile.batch_size == 32 and profile.threads == 1
    assert Profile.from_json(profile.as_json()) == profile


@pytest.mark.parametrize("data", [{"model": "CNN"}, {
    "model": "CNN", "batch_size": 32, "threads": 1, "forward": [1, 2], "backward": [1],
    "activation_bytes": [1, 2], "model_bytes": 1}, {
    "model": "CNN", "batch_size": 32, "threads": 1, "forward": [1, -2], "backward": [1, 1],
    "activation_bytes": [1, 2], "model_bytes": 1}])
def test_a_bad_profile_is_refused_saying_what_a_profile_is(data):
    with pytest.raises(ValueError, match="profile"):
        Profile.from_json(data)


@pytest.mark.parametrize(("value", "client", "factor"), [
    ("4", "2", 4.0), ("1,1,8,8,1", "3", 8.0), ("1,1,8,8,1", "5", 1.0), ("1", "1", 1.0),
    ("", "1", 1.0)])
def test_the_slowdown_hook_reads_its_clients_factor(monkeypatch, value, client, factor):
    monkeypatch.setenv("SPLITNET_TEST_SLOWDOWN", value)
    monkeypatch.setenv("CLIENT_NUMBER", client)
    assert slowdown_factor() == factor


@pytest.mark.parametrize("torch_threads", [None, "2"])
def test_profile_times_at_the_thread_count_a_client_computes_with(monkeypatch, capsys, write_env,
                                                                  torch_threads):
    monkeypatch.delenv("TORCH_INTEROP_THREADS", raising=False)
    if torch_threads is None:
        monkeypatch.delenv("TORCH_THREADS", raising=False)
    else:
        monkeypatch.setenv("TORCH_THREADS", torch_threads)
    env = write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="8")
    assert splitnet.node.client.apply_client_threads is apply_client_threads  # run_client's rule
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # stands for torch's default in a fresh process
        client = apply_client_threads(load(env).output)  # what a client computes with
        torch.set_num_threads(3)
        assert main(["profile", "--env-file", str(env), "--iterations", "1"]) == 0
    finally:
        torch.set_num_threads(before)
    assert client == (3 if torch_threads is None else 2)  # unset: torch's default, not 1
    out = capsys.readouterr().out
    assert f"batch 8, {client} thread(s)" in out
    assert "CLIENT_SPEED=[1,0.5] " in out  # one speed per configured client


@pytest.mark.parametrize(("clients", "example"), [(1, "[1]"), (2, "[1,0.5]"),
                                                  (5, "[1,1,1,0.5,0.5]")])
def test_the_speed_example_has_one_speed_per_client(clients, example):
    assert speed_example(clients) == example
