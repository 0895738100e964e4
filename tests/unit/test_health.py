"""``splitnet health`` pings the port its client listens on, read as the client reads it."""

from __future__ import annotations

from typing import ClassVar

import pytest

from splitnet.cli import main
from splitnet.errors import ConfigError
from splitnet.ops import health
from splitnet.ops.health import check_health, client_port


class _Client:
    """A PeerClient stand-in that records where it was pointed and answers round 3."""

    dialled: ClassVar[list[str]] = []

    def __init__(self, _me, address, *_a, **_k) -> None:
        self.dialled.append(address)

    async def ping(self, timeout: float) -> int:
        return 3

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(("environ", "port"), [
    ({}, 50051), ({"GRPC_PORT": "7000"}, 7000), ({"GRPC_PORT": ""}, 50051),
    ({"PEERS": "client1:7001,client2:7002", "CLIENT_NUMBER": "2", "GRPC_PORT": "7000"}, 7002),
    ({"PEERS": "[::1]:7001, 127.0.0.1:7002", "CLIENT_NUMBER": "1"}, 7001),
    ({"PEERS": "client1:7001,client2:7002"}, 50051)])
def test_the_port_is_the_clients_own(environ, port):
    assert client_port(environ) == port


def test_a_client_with_peers_is_pinged_on_its_own_entrys_port(monkeypatch):
    _Client.dialled = []
    monkeypatch.setattr(health, "PeerClient", _Client)
    code, line = check_health(environ={"PEERS": "a:7001,b:7002", "CLIENT_NUMBER": "2",
                                       "GRPC_PORT": "50051", "TLS": "off"})
    assert (code, line) == (0, "healthy (round 3)") and _Client.dialled == ["127.0.0.1:7002"]


@pytest.mark.parametrize(("environ", "named"), [
    ({"GRPC_PORT": "abc"}, "GRPC_PORT='abc': expected an integer from 1 to 65535"),
    ({"GRPC_PORT": "70000"}, "GRPC_PORT='70000'"),
    ({"PEERS": "a:7001,b:x", "CLIENT_NUMBER": "1"}, "PEERS='a:7001,b:x'"),
    ({"PEERS": "a:7001,b:7002", "CLIENT_NUMBER": "3"}, "CLIENT_NUMBER='3'"),
    ({"TLS": "on ", "CLIENT_NUMBER": "x"}, "CLIENT_NUMBER='x'"),  # read with TLS too
    ({"TLS": "on", "CLIENT_NUMBER": chr(0x661)}, "CLIENT_NUMBER=")])
def test_a_bad_setting_is_a_clean_error_naming_it(environ, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        check_health(environ=environ)


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_a_port_flag_out_of_range_is_refused(port, capsys, monkeypatch):
    monkeypatch.setattr(health, "PeerClient", _Client)
    assert main(["health", "--port", port]) == 2
    err = capsys.readouterr().err
    assert f"--port {port}: expected a port from 1 to 65535" in err and "Traceback" not in err


def test_grpc_port_abc_exits_2_without_a_traceback(capsys, monkeypatch):
    monkeypatch.setenv("GRPC_PORT", "abc")
    monkeypatch.delenv("PEERS", raising=False)
    assert main(["health"]) == 2
    err = capsys.readouterr().err
    assert "GRPC_PORT='abc'" in err and "internal error" not in err
