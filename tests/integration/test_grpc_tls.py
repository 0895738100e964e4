"""gRPC with mutual TLS on loopback: callers known by their certificates, nothing else taken.

A real server (``start_server`` with a TLS identity) and real clients: a member's call works; a
certificate of another CA, a plaintext call, an expired certificate and a member claiming
another client number are refused, counted, and the server keeps serving members.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import grpc
import pytest
import torch

from splitnet.errors import RuntimeFailure
from splitnet.ops.certs import make_certs
from splitnet.ops.health import check_health
from splitnet.transport.client import PeerClient
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc
from splitnet.transport.messages import TaskMessage
from splitnet.transport.server import start_server
from splitnet.transport.tls import Identity, TlsFiles, load_identity

from ..handlers import RecordingHandler

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Certificates of a 3-client cluster, another CA's client 2, and an expired client 2."""
    root = tmp_path_factory.mktemp("tls")
    make_certs(root / "ours", [1, 2, 3])
    make_certs(root / "theirs", [2])
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    make_certs(root / "old", [2], days=1, now=past)
    ours = {k: load_identity(TlsFiles.in_folder(root / "ours", k), k) for k in (1, 2, 3)}
    theirs = load_identity(TlsFiles.in_folder(root / "theirs", 2), 2)
    old_files = TlsFiles.in_folder(root / "old", 2)
    expired = Identity(2, old_files, ours[1].ca_pem, old_files.cert.read_bytes(),
                       old_files.key.read_bytes(), dt.datetime.now(dt.timezone.utc))
    return ours, theirs, expired


async def _serve(identity, handler, rejected):
    return await start_server(handler, "127.0.0.1", 0, "unused-token-0123456789",
                              lambda method, kind: rejected.append((method, kind)),
                              identity=identity)


def _raw_channel(port, identity, name="client1"):
    credentials = grpc.ssl_channel_credentials(root_certificates=identity.ca_pem,
                                               private_key=identity.key_pem,
                                               certificate_chain=identity.cert_pem)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials,
                                   options=[("grpc.ssl_target_name_override", name)])


def test_a_member_is_served_and_known_by_its_certificate(cluster):
    ours, _, _ = cluster

    async def scenario():
        handler, rejected = RecordingHandler(), []
        server, port = await _serve(ours[1], handler, rejected)
        try:
            async with PeerClient(1, f"127.0.0.1:{port}", "", 2, 5.0, identity=ours[2]) as peer:
                assert await peer.ping(timeout=5.0) == 3
                await peer.round_done(0, "{}")
                await peer.send_tensor(TaskMessage(1, 3, 0, 0, 2, torch.ones(2)))
            assert handler.reports == [(2, 0, "{}")] and len(handler.tensors) == 1
            assert rejected == []
        finally:
            await server.stop(None)

    asyncio.run(scenario())


def test_impostors_are_refused_counted_and_members_still_served(cluster):
    ours, theirs, expired = cluster

    async def scenario():
        handler, rejected = RecordingHandler(), []
        server, port = await _serve(ours[1], handler, rejected)
        try:
            # a member's certificate claiming another client number: PERMISSION_DENIED
            async with _raw_channel(port, ours[2]) as channel:
                stub = pb_grpc.PeerStub(channel)
                for call, request in ((stub.Ping, pb.PingRequest(client=3)),
                                      (stub.RoundDone, pb.RoundDoneRequest(client=3, round=0)),
                                      (stub.Abort, pb.NoticeRequest(client=3, reason="x"))):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await call(request, timeout=5)
                    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                    assert "client 2 cannot speak for client 3" in refused.value.details()
            async with PeerClient(1, f"127.0.0.1:{port}", "", 2, 5.0,
                                  identity=ours[2]) as peer:
                with pytest.raises(RuntimeFailure, match="cannot speak for client 3"):
                    await peer.send_tensor(TaskMessage(1, 3, 0, 0, 3, torch.ones(2)))
            assert handler.reports == [] and handler.tensors == []
            assert sorted(rejected) == sorted([("Ping", "auth"), ("RoundDone", "auth"),
                                               ("Abort", "auth"), ("SendTensor", "auth")])
            # another CA, an expired certificate, no TLS at all: no call gets through
            for stranger in (theirs, expired):
                async with PeerClient(1, f"127.0.0.1:{port}", "", 2, 3.0,
                                      identity=stranger) as peer:
                    with pytest.raises(RuntimeFailure):
                        await peer.ping(timeout=3.0)
            async with PeerClient(1, f"127.0.0.1:{port}", "unused-token-0123456789", 2,
                                  3.0) as plain:
                with pytest.raises(RuntimeFailure):
                    await plain.ping(timeout=3.0)
            # the server keeps serving a member
            async with PeerClient(1, f"127.0.0.1:{port}", "", 3, 5.0, identity=ours[3]) as peer:
                assert await peer.ping(timeout=5.0) == 3
        finally:
            await server.stop(None)

    asyncio.run(scenario())


def test_a_peer_presenting_another_clients_certificate_is_not_called(cluster):
    ours, _, _ = cluster

    async def scenario():
        server, port = await _serve(ours[3], RecordingHandler(), [])  # client 3 listens ...
        try:  # ... where client 2 believes client 1 is
            async with PeerClient(1, f"127.0.0.1:{port}", "", 2, 3.0, identity=ours[2]) as peer:
                with pytest.raises(RuntimeFailure):
                    await peer.ping(timeout=3.0)
        finally:
            await server.stop(None)

    asyncio.run(scenario())


def test_the_health_check_calls_its_own_tls_server_as_its_own_client(cluster, tmp_path):
    ours, _, _ = cluster
    folder = ours[1].files.ca.parent

    async def start():
        return await _serve(ours[1], RecordingHandler(), [])

    async def stop(server):
        await server.stop(None)

    loop = asyncio.new_event_loop()
    server, port = loop.run_until_complete(start())
    try:
        results = {}

        def probe(name, environ):
            results[name] = check_health(port, environ)

        threads = [threading.Thread(target=probe, args=("tls", {
                       "TLS": "on", "CLIENT_NUMBER": "1", "TLS_DIR": str(folder)})),
                   threading.Thread(target=probe, args=("plain", {})),
                   threading.Thread(target=probe, args=("nofiles", {
                       "TLS": "on", "CLIENT_NUMBER": "1", "TLS_DIR": str(tmp_path)}))]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            loop.run_until_complete(asyncio.sleep(0.05))
        assert results["tls"] == (0, "healthy (round 3)")
        assert results["plain"][0] == 1 and results["plain"][1].startswith("unhealthy")
        assert results["nofiles"][0] == 1 and "TLS=on but CA certificate" in results["nofiles"][1]
    finally:
        loop.run_until_complete(stop(server))
        loop.close()
