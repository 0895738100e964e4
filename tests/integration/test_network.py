"""GrpcNetwork on loopback: every tensor transport's refusal path, control errors, start-up."""

from __future__ import annotations

import asyncio
import socket

import pytest
import torch

from splitnet.errors import PlanMismatch, ProtocolError, RuntimeFailure, TransferFailed
from splitnet.transport.client import PeerClient
from splitnet.transport.messages import Blob, TaskMessage
from splitnet.transport.network import GrpcNetwork, NetworkOptions
from splitnet.transport.ports import free_ports

from ..handlers import RecordingHandler

pytestmark = pytest.mark.integration


def _options(activations: str, **kw) -> tuple[NetworkOptions, NetworkOptions]:
    ports = free_ports(2)
    addresses = [f"127.0.0.1:{p}" for p in ports]
    common = dict(addresses=addresses, token="test-token-0123456789", listen_host="127.0.0.1",
                  activation_transport=activations, torrent_timeout=20.0, peer_timeout=20.0)
    common.update(kw)
    return NetworkOptions(me=1, **common), NetworkOptions(me=2, **common)


async def _until(condition, seconds=30.0):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("activations", ["direct", "grpc", "torrent"])
def test_a_refusal_reaches_on_failure_as_transfer_failed_naming_peer_and_task(activations):
    async def scenario():
        first, second = _options(activations, bulk_transport="grpc")
        failures: list[TransferFailed] = []
        handler = RecordingHandler()
        handler.refuse_batch = 0
        async with GrpcNetwork(first) as one, GrpcNetwork(second) as two:
            await one.serve(RecordingHandler(), failures.append)
            handler.network = two
            await two.serve(handler, failures.append)
            one.learn(2, two.bulk.port, two.tensor_port)
            two.learn(1, one.bulk.port, one.tensor_port)
            sent = torch.randn(5, 3)
            one.tensors.send(2, TaskMessage(1, 3, 0, 0, 1, torch.ones(2)))
            one.tensors.send(2, TaskMessage(1, 3, 1, 0, 1, sent))
            await _until(lambda: failures and handler.tensors)
            (failure,) = failures
            assert isinstance(failure, TransferFailed)
            assert "client 2" in str(failure) and "task 1_3 batch 0" in str(failure)
            assert "client 4" in str(failure)  # the receiver's reason
            assert isinstance(failure.__cause__, ProtocolError)
            assert [m.batch for m in handler.tensors] == [1]
            assert torch.equal(handler.tensors[0].tensor, sent)

    asyncio.run(scenario())


def test_control_errors_token_and_ports_over_grpc():
    async def scenario():
        first, second = _options("direct", bulk_transport="torrent")
        rejected: list[tuple[str, str]] = []
        async with GrpcNetwork(first) as one, GrpcNetwork(second) as two:
            handler, first_handler = RecordingHandler(joined=two.learn), RecordingHandler()
            await one.serve(first_handler, [].append)
            await two.serve(handler, [].append,
                            lambda what, kind: rejected.append((what, kind)))
            peer = one.peers[2]
            assert await peer.join("fp", {"model": "cnn"}, 5.0, one.bulk.port,
                                   one.tensor_port) == ("fp", {"clients": 2}, 0, 0, "")
            assert handler.facts == {"model": "cnn"}
            two.tensors.send(1, TaskMessage(1, 5, 0, 0, 2, torch.ones(3)))  # ports learnt
            await _until(lambda: first_handler.tensors)
            await peer.round_done(0, '{"owners": []}')
            assert handler.reports == [(1, 0, '{"owners": []}')]
            await peer.put_model(Blob("model", 0, 1, b"x" * 100, {"k": 1}))
            assert handler.models[0].data == b"x" * 100
            for raised, expected in [(ProtocolError("bad report"), ProtocolError),
                                     (PlanMismatch("client 2's plan differs"), PlanMismatch),
                                     (RuntimeFailure("not the aggregator"), RuntimeFailure)]:
                handler.error = raised
                with pytest.raises(expected) as info:
                    await peer.round_done(0, "{}")
                assert type(info.value) is expected and str(raised) in str(info.value)
            handler.error = None
            stranger = PeerClient(2, second.addresses[1], "wrong-token-0123456789", 1, 5.0)
            with pytest.raises(RuntimeFailure, match="missing or wrong cluster token"):
                await stranger.ping(5.0)
            await stranger.aclose()
            assert len(rejected) == 1 and rejected[0][0].endswith("/Ping")
            assert rejected[0][1] == "auth"

    asyncio.run(scenario())


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_a_grpc_port_in_use_closes_the_swarm_and_the_tensor_listener():
    grpc_port, tensor_port, torrent_port = free_ports(3)
    options = NetworkOptions(me=1, addresses=[f"127.0.0.1:{grpc_port}", "127.0.0.1:1"],
                             token="test-token-0123456789", listen_host="127.0.0.1", bulk_transport="torrent",
                             tensor_port=tensor_port, torrent_port=torrent_port)

    async def scenario():
        network = GrpcNetwork(options)
        with pytest.raises(RuntimeFailure, match=f"cannot listen for peers on .*{grpc_port}"):
            await network.serve(RecordingHandler(), [].append)
        assert network.tensor_port == 0 and network.bulk.port == 0
        await network.aclose()
        await network.aclose()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", grpc_port))
        taken.listen(1)
        asyncio.run(scenario())
    assert _bindable(tensor_port) and _bindable(torrent_port)


def test_auto_bulk_sends_small_objects_inline_and_large_broadcasts_over_bittorrent():
    async def scenario():
        first, second = _options("direct", bulk_transport="auto", torrent_min_bytes=4096)
        async with GrpcNetwork(first) as one, GrpcNetwork(second) as two:
            await one.serve(RecordingHandler(), [].append)
            await two.serve(RecordingHandler(), [].append)
            two.learn(1, one.bulk.port, one.tensor_port)
            small, large = b"s" * 100, bytes(range(256)) * 64
            inline = one.bulk.out("states", 0, small)
            assert inline.data == small and "torrent" not in inline.meta
            # Note: one receiver goes inline: states (no other source) travel in the call
            unicast = one.bulk.out("states", 0, large, {"sent": 3})
            assert unicast.data == large and "torrent" not in unicast.meta
            assert unicast.meta["sent"] == 3 and one.bulk.disk_bytes() == 0
            alone = one.bulk.out("part", 0, large, sources=[1])
            assert alone.data == large and "torrent" not in alone.meta
            reference = one.bulk.out("model", 0, large, {"sent": 3}, sources=[1, 2])
            assert reference.data == b"" and reference.meta["sent"] == 3
            assert reference.meta["sources"] == [1, 2]
            assert await two.bulk.into(inline) == small
            assert await two.bulk.into(reference) == large
            assert one.bulk.disk_bytes() >= len(large) and two.bulk.disk_bytes() >= len(large)
            one.bulk.model_applied(1)  # Note: torrent housekeeping (round 0's model goes)
            two.bulk.model_applied(1)
            assert one.bulk.disk_bytes() == 0 and two.bulk.disk_bytes() == 0

    asyncio.run(scenario())


def test_torrent_bulk_sends_an_object_for_one_receiver_over_bittorrent_too():
    async def scenario():
        first, second = _options("direct", bulk_transport="torrent")
        async with GrpcNetwork(first) as one, GrpcNetwork(second) as two:
            await one.serve(RecordingHandler(), [].append)
            await two.serve(RecordingHandler(), [].append)
            two.learn(1, one.bulk.port, one.tensor_port)
            large = bytes(range(256)) * 64
            reference = one.bulk.out("states", 0, large)
            assert reference.data == b"" and reference.meta["sources"] == [1]
            assert await two.bulk.into(reference) == large

    asyncio.run(scenario())


def test_a_tensor_port_in_use_names_tensor_port_and_a_missing_address_listen_host():
    from splitnet.errors import BindFailed, ConfigError

    grpc_port, tensor_port = free_ports(2)
    common = dict(addresses=[f"127.0.0.1:{grpc_port}", "127.0.0.1:1"],
                  token="test-token-0123456789", tensor_port=tensor_port)

    async def serve(options):
        network = GrpcNetwork(options)
        try:
            await network.serve(RecordingHandler(), [].append)
        finally:
            await network.aclose()

    with socket.socket() as taken:  # Note: bind failures
        taken.bind(("127.0.0.1", tensor_port))
        taken.listen(1)
        with pytest.raises(BindFailed, match="set TENSOR_PORT to a free port"):
            asyncio.run(serve(NetworkOptions(me=1, listen_host="127.0.0.1", **common)))
    with pytest.raises(ConfigError, match="LISTEN_HOST='192.0.2.7': is not an address"):
        asyncio.run(serve(NetworkOptions(me=1, listen_host="192.0.2.7", **common)))
    assert _bindable(grpc_port) and _bindable(tensor_port)
