"""Note: bind failures: what a listener that cannot bind means (fakes; no socket is opened)."""

from __future__ import annotations

import asyncio
import errno
import socket
from types import SimpleNamespace

import pytest

from splitnet.errors import BindFailed, ConfigError, PeerUnavailable, RuntimeFailure
from splitnet.node import rejoin
from splitnet.node.rejoin import run_rejoining
from splitnet.transport import listen, server
from splitnet.transport.listen import check_listen_host, listen_failure

from ..conftest import plan_of, settings_of
from .rejoin_fakes import FakeNode


def _in_use() -> OSError:
    return OSError(errno.EADDRINUSE, "Address already in use")


@pytest.mark.parametrize(("key", "what"), [("TENSOR_PORT", "tensors"), ("GRPC_PORT", "peers"),
                                           ("TORRENT_PORT", "BitTorrent peers"),
                                           ("METRICS_PORT", "metrics")])
def test_a_port_in_use_names_its_key(key, what):
    error = listen_failure(3, what, key, "127.0.0.1", 50051, _in_use())
    assert isinstance(error, BindFailed) and error.key == key
    assert f"client 3 cannot listen for {what} on 127.0.0.1:50051: the port is in use" in str(error)
    assert f"set {key} to a free port" in str(error)
    assert isinstance(error.as_config_error(), ConfigError)


@pytest.mark.parametrize("exc", [OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
                                 socket.gaierror(socket.EAI_NONAME, "Name or service not known")])
def test_an_address_this_machine_lacks_names_listen_host(exc):
    error = listen_failure(1, "tensors", "TENSOR_PORT", "10.9.9.9", 7000, exc)
    assert isinstance(error, ConfigError) and "LISTEN_HOST='10.9.9.9'" in str(error)


def test_a_port_below_1024_without_privilege_names_its_key():
    error = listen_failure(1, "metrics", "METRICS_PORT", "0.0.0.0", 80,
                           OSError(errno.EACCES, "Permission denied"))
    assert isinstance(error, ConfigError) and "METRICS_PORT" in str(error)


def test_a_listen_host_that_does_not_resolve_is_a_config_error(monkeypatch):
    def fail(*_a, **_k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(listen.socket, "getaddrinfo", fail)
    with pytest.raises(ConfigError, match=r"LISTEN_HOST='\[::\]': does not resolve .*without "
                                          r"brackets"):
        check_listen_host("[::]")


def test_a_listen_host_that_is_no_address_here_is_a_config_error(monkeypatch):
    class Sock:
        def __init__(self, *_a): ...
        def __enter__(self): return self
        def __exit__(self, *_a): return None
        def bind(self, _addr):
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    monkeypatch.setattr(listen.socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.9.9", 0))])
    monkeypatch.setattr(listen.socket, "socket", Sock)
    with pytest.raises(ConfigError, match="LISTEN_HOST='10.9.9.9': is not an address of this"):
        check_listen_host("10.9.9.9")


def test_a_grpc_bind_whose_retry_succeeds_is_no_error(monkeypatch):
    tries = iter([0, 50077])
    monkeypatch.setattr(server, "_add_port", lambda *a: next(tries))
    monkeypatch.setattr(server, "bind_problem", lambda host, port: None)  # free by now

    async def start():
        started = []

        class Server:
            def add_generic_rpc_handlers(self, *_): ...
            def add_registered_method_handlers(self, *_a): ...
            async def start(self): started.append(True)

        monkeypatch.setattr(server.grpc.aio, "server", lambda **_: Server())
        monkeypatch.setattr(server.Registry, "add_to", lambda self, srv: None)
        _, port = await server.start_server(SimpleNamespace(tensor=None), "127.0.0.1", 50077, "t" * 32)
        return port, started

    assert asyncio.run(start()) == (50077, [True])


def test_a_grpc_bind_that_fails_says_why(monkeypatch):
    monkeypatch.setattr(server, "_add_port", lambda *a: 0)
    monkeypatch.setattr(server, "bind_problem", lambda host, port: _in_use())
    monkeypatch.setattr(server.Registry, "add_to", lambda self, srv: None)
    with pytest.raises(OSError) as caught:
        asyncio.run(server.start_server(SimpleNamespace(tensor=None), "127.0.0.1", 50077, "t" * 32))
    assert caught.value.errno == errno.EADDRINUSE


def _run(errors, policy="wait"):
    settings = settings_of("cnn_all_local.env", FAILURE_POLICY=policy, REJOIN_TIMEOUT="300")
    plan = plan_of("cnn_all_local.env")
    nodes = iter(FakeNode(plan, error, joined) for error, joined in errors)
    made = []

    def make(_plan, _settings):
        made.append(next(nodes))
        return made[-1]

    return asyncio.run(run_rejoining(plan, settings, make)), made


def _busy() -> BindFailed:
    return BindFailed("client 2 cannot listen for peers on 127.0.0.1:5: the port is in use; set "
                      "GRPC_PORT to a free port", "GRPC_PORT")


@pytest.mark.parametrize("policy", ["wait", "abort", "drop"])
def test_a_port_in_use_at_start_stops_at_once_as_a_config_error(policy):
    with pytest.raises(ConfigError, match="GRPC_PORT to a free port") as caught:
        _run([(_busy(), False)], policy)
    assert caught.value.exit_code == 2


def test_only_a_restarted_incarnation_retries_a_port_in_use(monkeypatch):
    monkeypatch.setattr(rejoin, "BIND_RETRY_SECONDS", 0.0)
    summary, made = _run([(PeerUnavailable("client 1 was silent for PEER_TIMEOUT=60s"), True),
                          (_busy(), False), (_busy(), False), (None, False)])
    assert summary == {"done": True} and len(made) == 4


def test_a_restarted_incarnation_stops_retrying_when_the_rejoin_time_is_up(monkeypatch):
    monkeypatch.setattr(rejoin, "BIND_RETRY_SECONDS", 200.0)

    async def no_sleep(_s):
        return None

    monkeypatch.setattr(rejoin.asyncio, "sleep", no_sleep)
    with pytest.raises(RuntimeFailure, match="the port is in use"):
        _run([(PeerUnavailable("client 1 was silent for PEER_TIMEOUT=60s"), True),
              (_busy(), False), (_busy(), False)])


def test_the_swarm_dials_a_names_ipv4_address_first(monkeypatch):
    from splitnet.transport import swarm

    both = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
    monkeypatch.setattr(swarm.socket, "getaddrinfo", lambda *a, **k: both)
    assert swarm.dial_address(1, "localhost") == "127.0.0.1"
    monkeypatch.setattr(swarm.socket, "getaddrinfo", lambda *a, **k: both[:1])
    assert swarm.dial_address(1, "::1") == "::1"


def test_grpc_listens_on_a_bare_ipv6_address_in_brackets(monkeypatch):
    seen = []
    monkeypatch.setattr(server, "_add_port", lambda srv, address, identity: seen.append(address)
                        or 0)
    monkeypatch.setattr(server, "bind_problem", lambda host, port: _in_use())
    monkeypatch.setattr(server.Registry, "add_to", lambda self, srv: None)
    with pytest.raises(OSError):
        asyncio.run(server.start_server(SimpleNamespace(tensor=None), "::1", 7001, "t" * 32))
    assert seen == ["[::1]:7001"]
