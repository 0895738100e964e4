"""A --profile file is checked value by value before plan --auto predicts with it."""

import pytest

from splitnet.learning.profile import Profile

GOOD = {"model": "CNN", "batch_size": 32, "threads": 1, "forward": [0.001, 0.002],
        "backward": [0.001, 0.003], "activation_bytes": [1280, 40], "model_bytes": 1000}


def test_a_good_profile_reads_back():
    assert Profile.from_json(GOOD).batch_size == 32


@pytest.mark.parametrize(("key", "value", "says"), [
    ("batch_size", 0, "batch_size 0: expected a whole number ≥ 1"),  # was ZeroDivisionError
    ("batch_size", -32, "batch_size -32: expected a whole number ≥ 1"),  # was a negative round
    ("batch_size", True, "batch_size True: expected a whole number"),
    ("batch_size", 32.5, "batch_size 32.5: expected a whole number"),
    ("threads", 0, "threads 0: expected a whole number ≥ 1"),
    ("activation_bytes", [-1, 40], "activation_bytes[0] -1: expected a whole number ≥ 0"),
    ("model_bytes", -5, "model_bytes -5: expected a whole number ≥ 0"),
    ("forward", [1e308, 0.002], "forward[0] 1e+308: expected a time from 0 to 3600 s"),
    ("backward", [0.001, float("nan")], "backward[1] nan: expected a time"),
    ("forward", [0.001, "fast"], "forward[1] 'fast': expected a time"),
    ("forward", [0.001], "one entry per partition"),
    ("forward", 5, "not a splitnet profile"),
])
def test_a_bad_value_is_refused_naming_it(key, value, says):  # 1e308 was 'chosen inf'
    with pytest.raises(ValueError) as refused:
        Profile.from_json({**GOOD, key: value})
    assert says in str(refused.value)


def test_every_bad_value_is_named_at_once():
    with pytest.raises(ValueError) as refused:
        Profile.from_json({**GOOD, "batch_size": 0, "model_bytes": -1, "forward": [0.1, -1]})
    text = str(refused.value).removeprefix("bad values in the profile: ")
    assert [part.split(":")[0] for part in text.split("; ")] == [
        "batch_size 0", "model_bytes -1", "forward[1] -1"]
