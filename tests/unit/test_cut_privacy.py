"""Differential privacy at the cut: settings, which steps are noised, the noise, and ε."""

import logging
import math

import numpy as np
import pytest
import torch

from splitnet.config import load
from splitnet.errors import ConfigError
from splitnet.learning.cut_privacy import (
    dp_block,
    noise,
    noise_generator,
    noised,
    owner_epsilon,
    releases,
    run_epsilon,
)
from splitnet.learning.dp import clip_and_noise, epsilon
from splitnet.plan.plan import describe_difference
from splitnet.plan.segments import entries_of
from splitnet.plan.task import Task

from ..conftest import plan_of

TWO = '[["1_1","1_4","1_5","1_8"],["1_2","1_3","1_6","1_7"]]'


# -- settings ---------------------------------------------------------------------------------

def test_dp_settings_default_off_and_parse():
    s = load(values={"SIMULATION_STAGES_CLIENTS": TWO}).training
    assert (s.dp_activations, s.dp_gradients, s.dp_clip, s.dp_noise_multiplier, s.dp_delta) \
        == (False, False, 10.0, 1.0, 1e-5) and not s.dp and s.dp_gradient_clip == 0.01
    s = load(values={"SIMULATION_STAGES_CLIENTS": TWO, "DP_ACTIVATIONS": "on",
                     "DP_GRADIENTS": "off", "DP_CLIP": "0.5", "DP_NOISE_MULTIPLIER": "0",
                     "DP_DELTA": "1e-6"}).training
    assert (s.dp_activations, s.dp_gradients, s.dp_clip, s.dp_noise_multiplier, s.dp_delta) \
        == (True, False, 0.5, 0.0, 1e-6) and s.dp


def test_bad_dp_settings_are_all_named_at_once():
    with pytest.raises(ConfigError) as caught:
        load(values={"SIMULATION_STAGES_CLIENTS": TWO, "DP_NOISE_MULTIPLIER": "-0.5",
                     "DP_CLIP": "0", "DP_DELTA": "1", "DP_ACTIVATIONS": "maybe"})
    text = str(caught.value)
    assert "DP_NOISE_MULTIPLIER='-0.5': expected a number from 0 to 1e+06" in text
    assert "DP_CLIP='0': expected a positive number" in text
    assert "DP_DELTA='1': expected a number strictly between 0 and 1" in text
    assert "DP_ACTIVATIONS='maybe': expected true or false" in text
    assert "Traceback" not in text


def test_dp_settings_are_facts_a_peer_must_share_and_absent_when_off():
    off = plan_of("owner_and_helper.env")
    on = plan_of("owner_and_helper.env", DP_ACTIVATIONS="on")
    other_sigma = plan_of("owner_and_helper.env", DP_ACTIVATIONS="on", DP_NOISE_MULTIPLIER="2")
    assert "dp" not in off.facts()  # fingerprints of runs without DP are unchanged
    assert on.facts()["dp"] == {"activations": True, "gradients": False, "clip": 10.0,
                                "gradient_clip": 0.01, "noise_multiplier": 1.0, "delta": 1e-5}
    assert len({off.fingerprint, on.fingerprint, other_sigma.fingerprint}) == 3
    difference = describe_difference(on.facts(), other_sigma.facts(), 1, 2)
    assert difference.startswith("dp (client 1: {") and "'noise_multiplier': 2.0" in difference


# -- which steps are noised, and how often each sample is released -------------------------------

def test_only_what_leaves_the_owner_is_noised():
    # client 1 owns the data and runs partitions 1 and 4; client 2 runs 2-3 (entries 1_2, 1_6)
    def noised_tasks(**values):
        plan = plan_of("owner_and_helper.env", **values)
        return {str(t) for c in (1, 2) for t in entries_of(plan, c) if noised(plan, t)}

    assert noised_tasks() == set()
    assert noised_tasks(DP_ACTIVATIONS="on") == {"1_1"}  # stage 1's output to the helper
    assert noised_tasks(DP_GRADIENTS="on") == {"1_4"}  # the loss step's gradient (stage P+1)
    assert noised_tasks(DP_ACTIVATIONS="on", DP_GRADIENTS="on") == {"1_1", "1_4"}
    # every partition on its owner: nothing crosses, nothing is noised
    local = plan_of("cnn_all_local.env", DP_ACTIVATIONS="on", DP_GRADIENTS="on")
    assert [t for c in local.clients for t in entries_of(local, c) if noised(local, t)] == []
    assert run_epsilon(local, 3) == 0.0


def test_releases_count_rounds_epochs_and_crossings_per_owner():
    plan = plan_of("cnn_cross_offload.env", DP_ACTIVATIONS="on", DP_GRADIENTS="on",
                   TRAINING_NUM_EPOCHS="3")
    for owner in plan.owners:
        crossings = sum(noised(plan, t) for t in entries_of(plan, owner) if t.owner == owner)
        assert releases(plan, owner, 2) == 2 * 3 * crossings
    counts = [releases(plan, o, 2) for o in plan.owners]
    assert max(counts) > 0
    assert run_epsilon(plan, 2) == epsilon(1.0, max(counts), 1e-5)
    helper = plan_of("owner_and_helper.env", DP_ACTIVATIONS="on", DP_GRADIENTS="on",
                     TRAINING_NUM_EPOCHS="2")
    assert releases(helper, 1, 5) == 5 * 2 * 2
    assert owner_epsilon(helper, 1, 5) == epsilon(1.0, 20, 1e-5)


# -- the noise ------------------------------------------------------------------------------------

def test_clip_and_noise_bounds_every_sample_norm_by_clip():
    x = torch.randn(64, 3, 5, 5, generator=torch.Generator().manual_seed(1)) * 4
    x[0] *= 1e-3  # a sample already inside the bound is left as it is
    clipped = clip_and_noise(x, 2.5, 0.0)
    norms = clipped.reshape(64, -1).norm(dim=1)
    assert norms.max() <= 2.5 + 1e-5 and (norms[1:] - 2.5).abs().max() < 1e-4
    torch.testing.assert_close(clipped[0], x[0])
    direction = torch.nn.functional.cosine_similarity(clipped.reshape(64, -1), x.reshape(64, -1))
    assert direction.min() > 1 - 1e-6  # clipping scales, never turns


def test_the_noise_has_std_sigma_times_clip_and_is_seeded():
    x = torch.zeros(200, 1000)  # norm 0: nothing clipped, the result is the noise alone
    sigma, clip = 1.5, 2.0
    out = clip_and_noise(x, clip, sigma, noise_generator(42, 1, 1, 0, 0))
    assert out.std().item() == pytest.approx(sigma * clip, rel=0.01)
    assert abs(out.mean().item()) < 0.01 * sigma * clip
    again = clip_and_noise(x, clip, sigma, noise_generator(42, 1, 1, 0, 0))
    other = clip_and_noise(x, clip, sigma, noise_generator(42, 1, 1, 1, 0))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_noise_uses_the_settings_and_the_step_generator():
    plan = plan_of("owner_and_helper.env", DP_ACTIVATIONS="on", DP_CLIP="0.5",
                   DP_NOISE_MULTIPLIER="3")
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    got = noise(plan.training, Task(1, 1), 7, 2, x)
    want = clip_and_noise(x, 0.5, 3.0, noise_generator(42, 1, 1, 7, 2))
    assert torch.equal(got, want)
    assert not torch.equal(got, noise(plan.training, Task(1, 1), 7, 3, x))


# -- ε ----------------------------------------------------------------------------------------------

def _classic_rdp_bound(sigma: float, count: int, delta: float) -> float:
    """eps = min over a of count*a/(2 sigma^2) + log(1/delta)/(a-1): the Gaussian RDP bound."""
    alphas = np.linspace(1.001, 500, 500_000)
    return float(np.min(count * alphas / (2 * sigma**2) + math.log(1 / delta) / (alphas - 1)))


@pytest.mark.parametrize("sigma, count", [(1.0, 30), (1.0, 1), (2.0, 10)])
def test_epsilon_lies_between_the_tight_pld_and_the_classic_rdp_bound(sigma, count):
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    spent = epsilon(sigma, count, 1e-5)
    pld = pld_privacy_accountant.PLDAccountant()
    pld.compose(dp_accounting.GaussianDpEvent(sigma), count)
    assert pld.get_epsilon(1e-5) <= spent <= _classic_rdp_bound(sigma, count, 1e-5)


def test_epsilon_for_sigma_1_and_30_releases_matches_the_rdp_bound_within_5_percent():
    classic = _classic_rdp_bound(1.0, 30, 1e-5)
    assert classic == pytest.approx(41.28, abs=0.01)
    assert epsilon(1.0, 30, 1e-5) == pytest.approx(classic, rel=0.05)
    assert epsilon(1.0, 0, 1e-5) == 0.0 and epsilon(0.0, 3, 1e-5) == math.inf


def test_summary_block_and_the_owner_log_line(caplog):
    plan = plan_of("owner_and_helper.env", DP_GRADIENTS="on", DP_NOISE_MULTIPLIER="2")
    block = dp_block(plan.training, run_epsilon(plan, 2))
    assert block == {"activations": False, "gradients": True, "clip": 10.0,
                     "gradient_clip": 0.01, "noise_multiplier": 2.0, "delta": 1e-5,
                     "epsilon": round(epsilon(2.0, 2, 1e-5), 6)}
    assert dp_block(plan.training, math.inf)["epsilon"] is None  # JSON has no infinity
    from splitnet.runtime.feeder import Feeder

    class _Interp:
        def __init__(self):
            from splitnet.telemetry.metrics import Metrics

            self.plan, self.metrics = plan, Metrics(1)

    interp = _Interp()
    feeder = Feeder(interp, 1, None)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="splitnet.runtime"):
        feeder._account(2)
    gauge = interp.metrics.registry.get_sample_value("splitnet_dp_epsilon", {"client": "1"})
    assert gauge == pytest.approx(epsilon(2.0, 3, 1e-5))
    [line] = [r.getMessage() for r in caplog.records if "differential privacy" in r.getMessage()]
    assert f"{epsilon(2.0, 1, 1e-5):.4g} this round" in line and "after 3 round(s)" in line
