"""splitnet profile: per-partition times and sizes; profiles read back; the slowdown hook."""

import pytest

from splitnet.learning.profile import Profile, profile_partitions
from splitnet.learning.slowdown import slowdown_factor

from ..conftest import settings_of


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
