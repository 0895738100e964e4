"""Weak values are refused by name at load (``splitnet validate``), or warned about."""

import pytest

from splitnet.cli import main
from splitnet.config import load, resolve_token
from splitnet.config.network import MIN_TOKEN_CHARS, PLACEHOLDER_TOKEN
from splitnet.errors import ConfigError
from splitnet.ops.compose import render_compose

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


@pytest.mark.parametrize("key, value, rule", [
    ("LEARNING_RATE", "1e26", "expected a number from 1e-12 to 10"),
    ("LEARNING_RATE", "nan", "expected a number from 1e-12 to 10"),
    ("PEER_TIMEOUT", "1e-320", "expected a number from 0.1 to 1e+07"),
    ("JOIN_TIMEOUT", "0.01", "expected a number from 0.1 to 1e+07"),
    ("TORRENT_TIMEOUT", "inf", "expected a number from 0.1 to 1e+07"),
    ("BULK_TORRENT_MIN_MIB", "1e303", "expected a number from 1e-06 to 1e+06"),
    ("LISTEN_HOST", "not a host!", "expected an IPv4 address, a bracketed IPv6 address or a host"),
    ("LISTEN_HOST", "999.1.1.1", "'999.1.1.1' is not an IPv4 address"),
    ("LISTEN_HOST", "::zz", "is not an IPv6 address"),
    ("PEERS", "127.0.0.1:7001,127.0.0.1", "entry '127.0.0.1': expected host:port"),
    ("PEERS", "127.0.0.1:7001,bad host:7002", "entry 'bad host:7002': expected an IPv4"),
    ("PEERS", "127.0.0.1:7001,::1:7002", "an IPv6 address goes in brackets"),
    ("PEERS", "127.0.0.1:7001,client2:70000", "a port from 1 to 65535"),
    ("PEERS", "127.0.0.1:7001", "PEERS lists 1 address(es) but NUM_CLIENTS=2"),
    ("RESULTS_DIR", "/dev/zero", "expected a folder that exists or can be created"),
    ("LEARNING_RATE", "-1", "expected a number from 1e-12 to 10"),
    ("PEER_TIMEOUT", "nan", "expected a number from 0.1 to 1e+07"),
    ("JOIN_TIMEOUT", "1e400", "expected a number from 0.1 to 1e+07"),
    ("PEERS", ",,", "entry '': expected host:port"),
    ("SPLITNET_TOKEN", "sh0rt-s3cr3t",
     f"is 12 characters: the cluster token must be at least {MIN_TOKEN_CHARS}"),
    ("SPLITNET_TOKEN_FILE", "/dev/zero", "is a character device, not a regular file"),
    ("CURRENT_MODEL", "RESNET18", "CURRENT_MODEL=RESNET18 has 10"),
    ("CHECKPOINT_DIR", "/dev/zero", "expected a folder that exists or can be created"),
    ("CHECKPOINT_KEEP", "-1", "expected an integer from 0 to 1000000"),
    ("CHECKPOINT_KEEP", "two", "expected an integer from 0 to 1000000"),
    ("RESUME", "always", "expected one of auto, never"),
    ("FAILURE_POLICY", "retry", "expected one of wait, drop, abort"),
    ("REJOIN_TIMEOUT", "0.5", "expected a number from 1 to 1e+07"),
    ("REJOIN_TIMEOUT", "inf", "expected a number from 1 to 1e+07"),
    ("REJOIN_TIMEOUT", "nan", "expected a number from 1 to 1e+07"),
    ("DP_NOISE_MULTIPLIER", "-1", "expected a number from 0 to 1e+06"),
    ("DP_NOISE_MULTIPLIER", "nan", "expected a number from 0 to 1e+06"),
    ("DP_CLIP", "0", "expected a positive number"),
    ("DP_CLIP", "-2", "expected a positive number"),
    ("DP_DELTA", "0", "expected a number strictly between 0 and 1"),
    ("DP_DELTA", "1.5", "expected a number strictly between 0 and 1"),
    ("DP_DELTA", "nan", "expected a number strictly between 0 and 1"),
    ("DP_ACTIVATIONS", "sometimes", "expected true or false"),
    ("DP_GRADIENTS", "2", "expected true or false"),
])
def test_validate_refuses_weak_values_by_name(write_env, capsys, key, value, rule):
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, **{key: value})
    assert main(["validate", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err
    violations = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(violations) == 1 and key in violations[0] and rule in violations[0]
    assert "Traceback" not in err and (key != "SPLITNET_TOKEN" or value not in err)


def test_results_dir_under_a_file_is_refused(tmp_path, write_env):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"RESULTS_DIR=.*it is a file or device \(.*file is in"):
        load(write_env(SIMULATION_STAGES_CLIENTS=TWO, RESULTS_DIR=str(tmp_path / "file" / "r")),
             environ={})


@pytest.mark.parametrize("key, value", [
    ("LISTEN_HOST", "0.0.0.0"), ("LISTEN_HOST", "::"), ("LISTEN_HOST", "::1"),
    ("LISTEN_HOST", "client1"), ("LISTEN_HOST", "splitnet_client1.example.org"),
    ("PEERS", "client1:50051,[::1]:7002"), ("PEERS", "127.0.0.1:7001, node-2.lan:7002"),
    ("LEARNING_RATE", "10"), ("PEER_TIMEOUT", "0.1"), ("RESULTS_DIR", "new/sub/dir"),
    ("CHECKPOINT_DIR", "new/ckpt"), ("CHECKPOINT_KEEP", "0"), ("RESUME", "NEVER"),
    ("FAILURE_POLICY", "drop"), ("REJOIN_TIMEOUT", "1e7"),
])
def test_sound_values_still_pass(write_env, key, value):
    load(write_env(SIMULATION_STAGES_CLIENTS=TWO, **{key: value}), environ={})


SHORT = "sh0rt-s3cr3t"  # fewer than MIN_TOKEN_CHARS characters


@pytest.mark.parametrize("token", [SHORT, "x", "a" * (MIN_TOKEN_CHARS - 1)])
def test_a_short_token_is_an_error_at_validate_naming_the_setting_not_the_token(
        write_env, capsys, token):
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, SPLITNET_TOKEN=token)
    assert main(["validate", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "SPLITNET_TOKEN" in line]
    assert len(lines) == 1 and lines[0].endswith(
        f"SPLITNET_TOKEN is {len(token)} characters: the cluster token must be at least "
        f"{MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 16`)")
    assert "Traceback" not in err and (len(token) == 1 or token not in err)


def test_a_short_token_file_is_an_error_at_validate_and_at_start(tmp_path, write_env, capsys):
    (tmp_path / "token").write_text(SHORT + "\n")
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, SPLITNET_TOKEN_FILE=str(tmp_path / "token"))
    assert main(["validate", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"SPLITNET_TOKEN_FILE is {len(SHORT)} characters: the cluster token must be at least"\
        in err and SHORT not in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="SPLITNET_TOKEN_FILE is 12 characters"):
        resolve_token(load(path, environ={}))


@pytest.mark.parametrize("token, warned", [
    (PLACEHOLDER_TOKEN, "placeholder 'change-me'"),
    ("a" * MIN_TOKEN_CHARS, None),
    ("0123456789abcdef0123456789abcdef", None),
])
def test_the_placeholder_token_is_only_warned_about_at_validate(write_env, capsys, token, warned):
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, SPLITNET_TOKEN=token)
    assert main(["validate", "--env-file", str(path)]) == 0
    err = capsys.readouterr().err
    if warned:
        assert "warning: SPLITNET_TOKEN" in err and warned in err
    else:
        assert "SPLITNET_TOKEN" not in err


def test_every_client_warns_about_the_placeholder_token_at_start(write_env, capsys, monkeypatch):
    started = []
    monkeypatch.setattr("splitnet.node.run_client",
                        lambda plan, settings: started.append(settings.network.client_number)
                        or {})
    for client in (1, 2):
        path = write_env(SIMULATION_STAGES_CLIENTS=TWO, CLIENT_NUMBER=str(client),
                         SPLITNET_TOKEN=PLACEHOLDER_TOKEN)
        assert main(["run", "--env-file", str(path)]) == 0
        assert "warning: SPLITNET_TOKEN is the placeholder 'change-me'" in capsys.readouterr().err
    assert started == [1, 2]


def test_the_compose_fallback_is_the_placeholder_that_is_warned_about():
    assert f"${{SPLITNET_TOKEN:-{PLACEHOLDER_TOKEN}}}" in render_compose(2)


def test_metrics_auth_file_must_hold_user_and_a_real_password(tmp_path):
    from splitnet.node.endpoint import endpoint_security

    def security(**values):
        return endpoint_security(load(values={"CLIENT_NUMBER": "1", "NUM_CLIENTS": "2",
                                              "SIMULATION_STAGES_CLIENTS": TWO, **values}))

    path = tmp_path / "auth"
    path.write_text("prometheus:short\n")
    with pytest.raises(ConfigError, match="METRICS_AUTH_FILE=.*expected one line user:password"):
        security(METRICS_AUTH_FILE=str(path))
    path.write_text("prometheus:long-enough\n")
    guarded = security(METRICS_AUTH_FILE=str(path))
    assert guarded.credentials == "prometheus:long-enough" and guarded.certfile is None
    with pytest.raises(ConfigError, match="METRICS_TLS=on needs this client's certificate"):
        security(METRICS_TLS="on", TLS_DIR=str(tmp_path))
