"""The test-only SPLITNET_TEST_SLOWDOWN hook: parsing, its error, and the sleep it adds."""

import pytest

from splitnet.errors import ConfigError
from splitnet.learning import slowdown
from splitnet.learning.slowdown import slow_down, slowdown_factor


@pytest.mark.parametrize(("value", "client", "says"), [
    ("0.5", "1", "0.5 is not a factor >= 1"), ("fast", "1", "'fast' is not a number"),
    ("1,2", "9", "lists 2 factors, none for CLIENT_NUMBER=9"), ("nan", "1", "not a factor"),
    ("1,1,x,1,1", "3", "'x' is not a number")])
def test_a_bad_slowdown_is_an_error_naming_the_hook_and_the_rule(monkeypatch, value, client,
                                                                   says):
    monkeypatch.setenv("SPLITNET_TEST_SLOWDOWN", value)
    monkeypatch.setenv("CLIENT_NUMBER", client)
    with pytest.raises(ConfigError, match=says) as info:
        slowdown_factor()
    assert "SPLITNET_TEST_SLOWDOWN" in str(info.value) and "e.g. 1,1,8,8,1" in str(info.value)


@pytest.mark.parametrize(("value", "slept", "cost"), [
    ("1,1,8,8,1", 0.07, 0.08), ("1", None, 0.01), ("", None, 0.01), ("2.5", 0.015, 0.025)])
def test_a_slowed_step_sleeps_k_minus_one_times_its_cpu(monkeypatch, value, slept, cost):
    monkeypatch.setenv("SPLITNET_TEST_SLOWDOWN", value)
    monkeypatch.setenv("CLIENT_NUMBER", "3")
    slowdown._factor.cache_clear()
    sleeps = []
    monkeypatch.setattr(slowdown.time, "sleep", sleeps.append)
    try:
        assert slow_down(0.01) == pytest.approx(cost)
    finally:
        slowdown._factor.cache_clear()
    assert sleeps == ([] if slept is None else [pytest.approx(slept)])
