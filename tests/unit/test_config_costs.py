"""CLIENT_SPEED, CLIENT_BANDWIDTH and CLIENT_RTT: parsed, and bad values named with the rule."""

import pytest

from splitnet.config import load
from splitnet.errors import ConfigError

FIVE = str([[f"{o}_{s}" for s in range(1, 9)] for o in range(1, 6)])


def _load(**values):
    return load(values={"SIMULATION_STAGES_CLIENTS": FIVE, **values})


def test_speeds_links_and_rtt_are_parsed():
    s = _load(CLIENT_SPEED="[1,1,0.5,0.5,1]", CLIENT_BANDWIDTH="100mbit", CLIENT_RTT="20ms")
    assert s.placement.client_speed == (1, 1, 0.5, 0.5, 1)
    assert s.placement.client_bandwidth == (12.5e6,)
    assert s.placement.client_rtt == pytest.approx(0.02)
    s = _load(CLIENT_BANDWIDTH="[8mbps, 1gbit,100kbit,1mbit,1mbit]", CLIENT_SPEED="2")
    assert s.placement.client_bandwidth == (8e6, 125e6, 12.5e3, 125e3, 125e3)
    assert s.placement.client_speed == (2.0,)


def test_defaults_mean_equal_speeds_unlimited_links_and_no_rtt():
    s = _load()
    assert (s.placement.client_speed, s.placement.client_bandwidth) == (None, None)
    assert s.placement.client_rtt is None  # unset: 2 x NETWORK_DELAY, or 0
    assert _load(CLIENT_RTT="0").placement.client_rtt == 0.0


@pytest.mark.parametrize(("key", "value", "says"), [
    ("CLIENT_SPEED", "[1,1,0,1,1]", "CLIENT_SPEED='[1,1,0,1,1]': 0 is not a positive finite"),
    ("CLIENT_SPEED", "[1,inf]", "'inf' is not a number; expected a positive finite number"),
    ("CLIENT_SPEED", "[1,fast]", "'fast' is not a number"),
    ("CLIENT_SPEED", "[1,1,1]", "CLIENT_SPEED lists 3 values but NUM_CLIENTS=5"),
    ("CLIENT_BANDWIDTH", "100", "'100' is not a tc rate"),
    ("CLIENT_BANDWIDTH", "[1mbit,2mbit]", "CLIENT_BANDWIDTH lists 2 values but NUM_CLIENTS=5"),
    ("CLIENT_RTT", "20", "CLIENT_RTT='20': expected a time with a unit"),
    ("CLIENT_RTT", "99999999999999s", "99999999999999s is over 60 s"),
    ("CLIENT_SPEED", "1e-300", "1e-300 is outside 0.001..1000"),
    ("CLIENT_SPEED", "[1,1,1,1,5000]", "5000 is outside 0.001..1000"),
    ("CLIENT_BANDWIDTH", "0.0000001bit", "0.0000001bit is below 1kbit"),
])
def test_bad_values_name_the_key_and_the_rule(key, value, says):
    with pytest.raises(ConfigError) as caught:
        _load(**{key: value})
    assert says in str(caught.value)


def test_plan_auto_falls_back_on_the_shaping_settings():
    from splitnet.learning.profile import Profile
    from splitnet.ops.autoplan import Overheads, costs_for

    profile = Profile("CNN", 32, 1, (1.0,) * 4, (2.0,) * 4, (100,) * 4, 10)
    shaped = _load(UPLOAD_BANDWIDTH="80mbit", NETWORK_DELAY="5ms")
    costs = costs_for(shaped, profile, Overheads())
    assert costs.bandwidth == (10e6,) * 5 and costs.rtt == pytest.approx(0.01)
    # the round-end exchange: 5 owners' 10-byte models in and out over 10 MB/s
    assert costs.round_overhead == pytest.approx(Overheads().round + 2 * 5 * 10 / 10e6)
    reduce = costs_for(_load(UPLOAD_BANDWIDTH="80mbit", AGGREGATION="reduce"), profile,
                       Overheads())  # about 2 x the model through every client
    assert reduce.round_overhead == pytest.approx(Overheads().round + 2 * 10 / 10e6)
    declared = _load(UPLOAD_BANDWIDTH="80mbit", CLIENT_BANDWIDTH="8mbit", CLIENT_RTT="1ms")
    costs = costs_for(declared, profile, Overheads())
    assert costs.bandwidth == (1e6,) * 5 and costs.rtt == pytest.approx(0.001)
    assert costs_for(_load(), profile, Overheads()).bandwidth == (float("inf"),) * 5
    assert costs_for(_load(), profile, Overheads()).rtt == 0.0
    explicit_zero = _load(NETWORK_DELAY="50ms", CLIENT_RTT="0ms")  # not 'unset'
    assert costs_for(explicit_zero, profile, Overheads()).rtt == 0.0


def test_plan_auto_scales_times_by_the_calibration_and_bytes_by_the_batch_only():
    from splitnet.learning.profile import Profile
    from splitnet.ops.autoplan import Overheads, costs_for

    profile = Profile("CNN", 16, 1, (1.0,) * 4, (2.0,) * 4, (100,) * 4, 10)
    costs = costs_for(_load(BATCH_SIZE="32"), profile, Overheads(scale=3.0))
    assert costs.forward == (6.0,) * 4  # 2 (the batch) x 3 (the fitted compute scale)
    assert costs.activation_bytes == (200,) * 4  # the batch alone
