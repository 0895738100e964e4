"""The listeners a client opens may not share a port (Note: listeners opened, config/listeners.py)."""

import itertools

import pytest

from splitnet.cli import main
from splitnet.config import load
from splitnet.config.listeners import opened_listeners
from splitnet.errors import ConfigError
from splitnet.transport.bulk import uses_swarm

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'
ALL_50051 = {"GRPC_PORT": "50051", "TENSOR_PORT": "50051", "TORRENT_PORT": "50051",
             "METRICS_PORT": "50051"}


def violations_of(write_env, **values):
    try:
        load(write_env(SIMULATION_STAGES_CLIENTS=TWO, **values), environ={})
    except ConfigError as exc:
        return [v.message for v in exc.violations]
    return []


def test_all_four_listeners_on_one_port_are_refused_naming_every_key(write_env, capsys):
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, **ALL_50051)
    assert main(["validate", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("  - ")]
    assert lines == ["  - [setting] GRPC_PORT, TENSOR_PORT, TORRENT_PORT and METRICS_PORT share "
                     "port 50051: every client would open these listeners on one port; "
                     "expected a different port for each (0: any free port)"]


@pytest.mark.parametrize("values, keys", [
    ({"GRPC_PORT": "7000", "TENSOR_PORT": "7000"}, "GRPC_PORT and TENSOR_PORT share port 7000"),
    ({"TORRENT_PORT": "9100"}, "TORRENT_PORT and METRICS_PORT share port 9100"),
    ({"METRICS_PORT": "50051"}, "GRPC_PORT and METRICS_PORT share port 50051"),
    ({"PEERS": "a:6881,b:7000"}, "the PEERS entry and TORRENT_PORT share port 6881: client 1 "),
    ({"PEERS": "a:6881,b:6881"}, "the PEERS entry and TORRENT_PORT share port 6881: clients 1, 2"),
    ({"PEERS": "a:7000,b:7001", "CLIENT_NUMBER": "2", "TENSOR_PORT": "7001"},
     "the PEERS entry and TENSOR_PORT share port 7001: client 2 "),
])
def test_listeners_a_client_opens_must_differ(write_env, values, keys):
    (message,) = violations_of(write_env, **values)
    assert keys in message


@pytest.mark.parametrize("values", [
    {"TENSOR_PORT": "0", "TORRENT_PORT": "0", "METRICS_PORT": "0"},  # 0: any free port
    {"GRPC_PORT": "7000", "TENSOR_PORT": "7000", "ACTIVATION_TRANSPORT": "grpc"},  # no channel
    {"GRPC_PORT": "7000", "TORRENT_PORT": "7000", "BULK_TRANSPORT": "grpc"},  # no swarm
    {"GRPC_PORT": "9100", "METRICS_PORT": "0"},  # metrics off
    {"PEERS": "a:7000,b:7001", "GRPC_PORT": "6881"},  # GRPC_PORT unused with PEERS
    {"PEERS": "a:7000,b:7001", "CLIENT_NUMBER": "1", "TENSOR_PORT": "7001"},  # client 2's port
    {"PEERS": "a:7000,a:7001"},  # one host, two ports
])
def test_listeners_never_opened_or_on_any_free_port_are_not_compared(write_env, values):
    assert violations_of(write_env, **values) == []


def test_a_bad_port_is_reported_once_not_compared(write_env):
    (message,) = violations_of(write_env, GRPC_PORT="x", TORRENT_PORT="50051")
    assert message.startswith("GRPC_PORT='x'")


@pytest.mark.parametrize("peers, named", [
    ("127.0.0.1:7001,127.0.0.1:7001", "127.0.0.1:7001 for clients 1, 2"),
    ("Client1:7001,client1.:07001", "client1:7001 for clients 1, 2"),
    ("[::1]:7001,[0:0::1]:7001", "[::1]:7001 for clients 1, 2"),
])
def test_peers_naming_one_address_twice_is_refused(write_env, peers, named):
    (message,) = violations_of(write_env, PEERS=peers, TORRENT_PORT="0")
    assert message == (f"PEERS names {named}: expected one address per client (each listens on "
                       "its own)")


@pytest.mark.parametrize("values, refused", [
    ({"METRICS_TLS": "on", "TLS": "off"}, True),
    ({"METRICS_TLS": "on", "TLS": "off", "METRICS_PORT": "0"}, False),
    ({"METRICS_TLS": "on", "TLS": "on"}, False),
    ({"METRICS_TLS": "off", "TLS": "off"}, False),
])
def test_metrics_over_https_needs_tls(write_env, values, refused):
    messages = violations_of(write_env, **values)
    assert bool(messages) == refused
    assert all(m.startswith("METRICS_TLS=on with TLS=off: /metrics over HTTPS needs") for m in messages)


@pytest.mark.parametrize("bulk, activation", list(itertools.product(
    ("auto", "torrent", "grpc"), ("direct", "grpc", "torrent"))))
def test_the_torrent_listener_is_compared_exactly_when_the_client_runs_a_swarm(
        write_env, bulk, activation):
    settings = load(write_env(SIMULATION_STAGES_CLIENTS=TWO), environ={
        "BULK_TRANSPORT": bulk, "ACTIVATION_TRANSPORT": activation})
    opened = opened_listeners(settings.network, settings.transport, settings.output, 1)
    assert ("TORRENT_PORT" in opened) == uses_swarm(bulk, activation)
    assert ("TENSOR_PORT" in opened) == (activation == "direct")
