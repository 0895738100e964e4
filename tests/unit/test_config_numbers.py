"""Settings take only plain ASCII numbers (Note: plain numbers, ``splitnet/config/parsing.py``)."""

import pytest

from splitnet.cli import main
from splitnet.config import load
from splitnet.config.parsing import plain_float, plain_int
from splitnet.errors import ConfigError
from splitnet.ops.prepare import prepare

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


@pytest.mark.parametrize("key, value, rule", [
    ("LEARNING_RATE", "0_1", "expected a number from 1e-12 to 10"),  # float(): 1.0
    ("BATCH_SIZE", "3_2", "expected an integer from 1 to 1000000"),  # int(): 32
    ("BATCH_SIZE", "\u0663\u0662", "expected an integer from 1 to 1000000"),  # Arabic-Indic 32
    ("BATCH_SIZE", "\uff13\uff12", "expected an integer from 1 to 1000000"),  # full-width 32
    ("SEED", "4_2", "expected an integer from 0 to 4294967295"),
    ("GRPC_PORT", "5_0051", "expected an integer from 1 to 65535"),
    ("LEARNING_RATE", "\u0660.\u0661", "expected a number from 1e-12 to 10"),  # 0.1 in Arabic-Indic digits
    ("DIRICHLET_ALPHA", "0_5", "expected a positive number"),
    ("DP_DELTA", "1e-0_5", "expected a number strictly between 0 and 1"),
    ("JOIN_TIMEOUT", "6_0", "expected a number from 0.1 to 1e+07"),
    ("CLIENT_SPEED", "[1,0_5]", "'0_5' is not a number"),
    ("CLIENT_SPEED", "\uff11", "is not a number"),
    ("PEERS", "127.0.0.1:7001,127.0.0.1:\uff17\uff10\uff10\uff12", "a port from 1 to 65535"),
    ("PEERS", "127.0.0.1:7001,127.0.0.1:\u0667\u0660\u0660\u0662", "a port from 1 to 65535"),
    ("PEERS", "127.0.0.1:7001,127.0.0.1:7_002", "a port from 1 to 65535"),
])
def test_only_plain_ascii_numbers_are_read_as_numbers(write_env, capsys, key, value, rule):
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, **{key: value})
    assert main(["validate", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err
    violations = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(violations) == 1 and key in violations[0] and rule in violations[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("key, value, attr, expected", [
    ("BATCH_SIZE", " 16 ", ("training", "batch_size"), 16),
    ("BATCH_SIZE", "+16", ("training", "batch_size"), 16),
    ("LEARNING_RATE", ".5", ("training", "learning_rate"), 0.5),
    ("LEARNING_RATE", "5e-2", ("training", "learning_rate"), 0.05),
    ("LEARNING_RATE", "1.", ("training", "learning_rate"), 1.0),
    ("DP_DELTA", "1E-6", ("training", "dp_delta"), 1e-6),
    ("CLIENT_SPEED", "[1, 0.5]", ("placement", "client_speed"), (1.0, 0.5)),
    ("PEERS", "127.0.0.1:07001,[::1]:7002", ("network", "peers"), "127.0.0.1:07001,[::1]:7002"),
])
def test_plain_spellings_still_read(write_env, key, value, attr, expected):
    settings = load(write_env(SIMULATION_STAGES_CLIENTS=TWO, **{key: value}), environ={})
    assert getattr(getattr(settings, attr[0]), attr[1]) == expected


@pytest.mark.parametrize("text", ["3_2", "\u0663", "\uff13", "0x20", "1e3", "", "-", "3.0"])
def test_plain_int_refuses_what_python_int_would_stretch(text):
    with pytest.raises(ValueError, match="is not a plain integer"):
        plain_int(text)


@pytest.mark.parametrize("text", ["0_1", "inf", "nan", "Infinity", "\u0661.\u0665", ".", "1e",
                                  "1_000.0", "0x1p3"])
def test_plain_float_refuses_what_python_float_would_stretch(text):
    with pytest.raises(ValueError, match="is not a plain number"):
        plain_float(text)


@pytest.mark.parametrize("pairs", ["[['1','8'],['2','7'],['3','6'],['4','\u0665']]",
                                   "[[1,8],[2,7],[3,6],[4,'5_0']]", "[[1,8],[2,7],[3,6],[4,5.0]]",
                                   "[[1,8],[2,7],[3,6],[True,5]]"])
def test_explicit_pairing_takes_plain_stage_numbers_only(write_env, pairs):
    with pytest.raises(ConfigError, match="FORWARD_BACKWARD_PAIR_STAGES=.*is not the pairing"):
        prepare(write_env(SIMULATION_STAGES_CLIENTS=TWO, FORWARD_BACKWARD_PAIR_STAGES=pairs),
                environ={})


def test_explicit_pairing_as_plain_strings_still_reads(write_env):
    prepare(write_env(SIMULATION_STAGES_CLIENTS=TWO,
                      FORWARD_BACKWARD_PAIR_STAGES="[['1','8'],['2','7'],['3','6'],['4','5']]"),
            environ={})
