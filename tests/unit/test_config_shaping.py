"""Shaping values tc would refuse are refused by validate (config/shaping.py)."""

import pytest

from splitnet.cli import main
from splitnet.config import load

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


@pytest.mark.parametrize("key, value, rule", [
    ("UPLOAD_BANDWIDTH", "0mbit", "'0mbit': 0mbit is below 1kbit (tc refuses a rate of 0)"),
    ("DOWNLOAD_BANDWIDTH", "0.0bit", "is below 1kbit"),
    ("UPLOAD_BANDWIDTH", "999bit", "is below 1kbit"),
    ("UPLOAD_BANDWIDTH", "fast", "expected a rate from 1kbit with a tc unit"),
    ("NETWORK_LOSS", "5 %", "expected a percentage from 0 to 100, e.g. 0.5% (no space"),
    ("NETWORK_LOSS", "5%%", "expected a percentage from 0 to 100"),
    ("NETWORK_LOSS", "0_5%", "expected a percentage from 0 to 100"),
    ("NETWORK_LOSS", "nan%", "expected a percentage from 0 to 100"),
    ("NETWORK_LOSS", "101%", "expected a percentage from 0 to 100"),
])
def test_shaping_values_tc_refuses_are_refused_by_validate(write_env, capsys, key, value, rule):
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, **{key: value})
    assert main(["validate", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err
    violations = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(violations) == 1 and f"{key}=" in violations[0] and rule in violations[0], err


@pytest.mark.parametrize("key, value, attr, expected", [
    ("UPLOAD_BANDWIDTH", "100MBIT", "upload_bandwidth", "100mbit"),
    ("DOWNLOAD_BANDWIDTH", "1kbit", "download_bandwidth", "1kbit"),
    ("UPLOAD_BANDWIDTH", "12.5mbps", "upload_bandwidth", "12.5mbps"),
    ("NETWORK_LOSS", "0.5%", "network_loss", "0.5%"),
    ("NETWORK_LOSS", " 5 ", "network_loss", "5%"),
    ("NETWORK_LOSS", "0", "network_loss", "0%"),
])
def test_sound_shaping_values_pass(write_env, key, value, attr, expected):
    settings = load(write_env(SIMULATION_STAGES_CLIENTS=TWO, **{key: value}), environ={})
    assert getattr(settings.shaping, attr) == expected
