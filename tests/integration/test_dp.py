"""Differential privacy at the cut on a real cluster (gRPC on loopback, one process)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from splitnet.config.envfile import read_env_file
from splitnet.errors import PlanMismatch
from splitnet.learning.cut_privacy import noise_generator
from splitnet.learning.dp import clip_and_noise, epsilon
from splitnet.runtime.interpreter import Interpreter

from ..conftest import EXAMPLES
from .cluster import run_cluster

pytestmark = pytest.mark.integration
HELPER = 2  # owner_and_helper.env: client 1 owns the data and runs 1_1, 1_4; client 2 runs 2-3


def example(**overrides):
    values, violations, _ = read_env_file(EXAMPLES / "owner_and_helper.env")
    assert not violations
    return {**values, "JOIN_TIMEOUT": "30", "PEER_TIMEOUT": "30", "TRAINING_NUM_EPOCHS": "1",
            **overrides}


def final_model(results):
    return load_file(str(sorted((results / "latest" / "models").glob("round*.safetensors"))[-1]))


@pytest.fixture
def received(monkeypatch):
    """What the helper accepts from the owner: (stage, batch, round) -> tensor."""
    got: dict[tuple[int, int, int], torch.Tensor] = {}
    original = Interpreter.accept

    def accept(self, msg):
        original(self, msg)
        if self.me == HELPER:
            got[(msg.stage, msg.batch, msg.round)] = msg.tensor.clone()

    monkeypatch.setattr(Interpreter, "accept", accept)
    return got


def _run(values, folder, received):
    received.clear()
    results = run_cluster(values, folder)
    assert not [r for r in results if isinstance(r, BaseException)], results
    return results[0], dict(received)


def test_the_helper_sees_only_clipped_and_noised_activations_and_gradients(tmp_path, received):
    base = example(TRAINING_NUM_ROUNDS="2")
    clean, clean_in = _run(base, tmp_path / "clean", received)
    sigma, clip = 0.5, 1.0
    private, private_in = _run({**base, "DP_ACTIVATIONS": "on", "DP_CLIP": str(clip),
                                "DP_NOISE_MULTIPLIER": str(sigma)}, tmp_path / "dp", received)
    assert clean_in.keys() == private_in.keys() and (2, 0, 0) in clean_in

    # Batch 0 of round 0 meets the same weights in both runs: what the helper gets is exactly the
    # clean activation, clipped and noised with the step's seeded generator ...
    a, b = clean_in[(2, 0, 0)], private_in[(2, 0, 0)]
    torch.testing.assert_close(b, clip_and_noise(a, clip, sigma, noise_generator(42, 1, 1, 0, 0)))
    # ... which is about the expected scale away from it: noise of std sigma * clip
    assert a.reshape(len(a), -1).norm(dim=1).min() > clip  # the clean activations were clipped
    difference = b - clip_and_noise(a, clip, 0.0)
    assert difference.numel() >= 1000
    assert difference.std().item() == pytest.approx(sigma * clip, rel=0.05)
    assert (b - a).abs().mean() > 0.1 * sigma * clip
    # every later activation differs as well, and so does the trained model
    assert all(not torch.equal(clean_in[k], private_in[k]) for k in clean_in if k[0] == 2)
    clean_model, private_model = final_model(tmp_path / "clean"), final_model(tmp_path / "dp")
    assert any(not torch.equal(clean_model[k], private_model[k]) for k in clean_model)

    # summary.json: the settings and a finite ε for 2 rounds x 1 epoch x 1 crossing
    on_disk = json.loads((tmp_path / "dp" / "latest" / "summary.json").read_text())
    assert on_disk["dp"] == private["dp"] == {
        "activations": True, "gradients": False, "clip": clip, "gradient_clip": 0.01,
        "noise_multiplier": sigma,
        "delta": 1e-5, "epsilon": round(epsilon(sigma, 2, 1e-5), 6)}
    assert 0 < private["dp"]["epsilon"] < 1e6
    assert clean["dp"]["epsilon"] == 0.0 and clean["dp"]["activations"] is False

    # DP_GRADIENTS alone: the activations cross untouched, the loss step's gradient is noised
    _, grads_in = _run({**base, "TRAINING_NUM_ROUNDS": "1", "DP_GRADIENTS": "on",
                        "DP_GRADIENT_CLIP": "0.02"}, tmp_path / "grads", received)
    torch.testing.assert_close(grads_in[(2, 0, 0)], clean_in[(2, 0, 0)], atol=0, rtol=0)
    g = clean_in[(6, 0, 0)]  # the gradient of stage P+1 (computed in step 1_4, Note: loss chained)
    torch.testing.assert_close(grads_in[(6, 0, 0)],
                               clip_and_noise(g, 0.02, 1.0, noise_generator(42, 1, 4, 0, 0)))


def test_a_client_with_other_dp_settings_is_refused_at_join(tmp_path):
    results = run_cluster(example(TRAINING_NUM_ROUNDS="1"), tmp_path,
                          per_client={2: {"DP_ACTIVATIONS": "on"}})
    assert all(isinstance(r, PlanMismatch) for r in results), results
    assert all("dp (client" in str(r) for r in results), results
