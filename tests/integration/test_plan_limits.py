"""Plan-derived limits on real listeners (Note: wire limits in splitnet.learning.sizes).

A client's listeners accept no tensor larger than the plan's largest activation and no bulk
object larger than its model's states: one byte over is refused from the header alone, with no
data sent, and the listener keeps serving.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
import torch

from splitnet.config import load
from splitnet.errors import ProtocolError
from splitnet.learning.sizes import wire_limits
from splitnet.node.client import network_options
from splitnet.plan.plan import build_plan
from splitnet.transport.channel import TensorChannel
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc
from splitnet.transport.inbound import HELLO, MAGIC, U32, VERSION, proof
from splitnet.transport.messages import Blob, TaskMessage
from splitnet.transport.network import GrpcNetwork
from splitnet.transport.ports import free_ports
from splitnet.transport.serde import MAX_FRAME_BYTES

from ..conftest import EXAMPLES
from ..handlers import RecordingHandler

pytestmark = pytest.mark.integration

TOKEN = "plan-limits-token-0123456789"
BOUND = 10.0  # a hang guard, not a timing assertion
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def _settings():
    peers = ",".join(f"127.0.0.1:{p}" for p in free_ports(5))
    return load(EXAMPLES / "cnn_cross_offload.env", env_file_required=True, environ={
        "CLIENT_NUMBER": "2", "PEERS": peers, "SPLITNET_TOKEN": TOKEN, "TORRENT_PORT": "0",
        "LISTEN_HOST": "127.0.0.1", "TENSOR_PORT": "0", "METRICS_PORT": "0", "TLS": "off"})


def _over(limit: int) -> pb.TaskHeader:
    """A float32 tensor header announcing one element more than ``limit`` bytes hold."""
    elements = limit // 4 + 1
    return pb.TaskHeader(owner=1, stage=3, batch=0, round=0, sender=1, tensor=pb.TensorHeader(
        dtype="float32", shape=[elements], nbytes=4 * elements))


async def _only(first, never: asyncio.Event):
    """Yield ``first``, then wait: the rest of the message is never sent."""
    yield first
    await never.wait()


def _plan_and_options():
    """The options ``network_options`` gives, and the limits of the plan itself."""
    settings = _settings()
    plan = build_plan(settings.training)
    return wire_limits(plan), network_options(settings, plan)


async def _served(network, handler, refused=None):
    """Serve ``network``; ``refused`` collects what its listeners refuse, as (what, kind)."""
    await network.serve(handler, lambda failure: None,
                        None if refused is None else lambda *what_kind: refused.append(what_kind))
    return network


def test_the_plans_limits_are_passed_to_every_listener():
    settings = _settings()
    plan = build_plan(settings.training)
    options = network_options(settings, plan)
    limits = wire_limits(plan)
    assert (options.max_tensor_bytes, options.max_bulk_bytes) == (limits.tensor_bytes,
                                                                 limits.bulk_bytes)
    network = GrpcNetwork(options)
    assert network.tensors.limits.max_tensor_bytes == limits.tensor_bytes
    assert network.bulk.max_bytes == limits.bulk_bytes
    assert all(c.max_blob_bytes == limits.bulk_bytes for c in network._clients.values())


def test_one_element_over_the_plans_largest_tensor_is_refused_from_its_header_on_the_channel():
    async def scenario():
        limits, options = _plan_and_options()
        limit = limits.tensor_bytes
        handler, refused = RecordingHandler(), []
        network = await _served(GrpcNetwork(options), handler, refused)
        reader, writer = await asyncio.open_connection("127.0.0.1", network.tensor_port)
        writer.write(HELLO.pack(MAGIC, VERSION, 1, proof(TOKEN)))
        assert await reader.readexactly(4) == b"\0\0\0\0"
        header = _over(limit).SerializeToString()
        writer.write(U32.pack(len(header)) + header)  # no data follows
        rest = await asyncio.wait_for(reader.read(), BOUND)
        assert f"exceeds the limit of {limit}".encode() in rest
        assert refused == [("TensorChannel", "limit")]  # counted (splitnet_errors, kind limit)
        writer.close()

        sender = TensorChannel(1, TOKEN)  # the plan's largest tensor itself still arrives
        await sender.start("127.0.0.1", 0, lambda msg: None, lambda failure: None)
        sender.learn(2, "127.0.0.1", network.tensor_port)
        sender.send(2, TaskMessage(1, 3, 7, 0, 1, torch.ones(limit // 4)))
        for _ in range(int(BOUND / 0.01)):
            if handler.tensors:
                break
            await asyncio.sleep(0.01)
        assert [m.tensor.numel() * 4 for m in handler.tensors] == [limit]
        await sender.aclose()
        await network.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("call", ["SendTensor", "TensorStream", "PutModel"])
def test_one_byte_over_the_plans_limit_is_refused_from_its_header_over_grpc(call):
    async def scenario():
        limits, options = _plan_and_options()
        refused = []
        network = await _served(GrpcNetwork(options), RecordingHandler(), refused)
        never = asyncio.Event()
        if call == "PutModel":
            limit = limits.bulk_bytes
            first = pb.BlobFrame(header=pb.BlobHeader(kind="model", round=0, sender=1,
                                                      nbytes=limit + 1))
            expected = f"claims {limit + 1} bytes (limit {limit})"
        else:
            limit = limits.tensor_bytes
            first = pb.TensorFrame(header=_over(limit))
            expected = f"exceeds the limit of {limit}"
        async with grpc.aio.insecure_channel(options.addresses[1]) as channel:
            method = getattr(pb_grpc.PeerStub(channel), call)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                reply = method(_only(first, never), metadata=AUTH, timeout=BOUND)
                if call == "TensorStream":
                    async for _ in reply:
                        pass
                else:
                    await reply
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert expected in (caught.value.details() or "")
            assert refused == [(call, "limit")]  # counted (splitnet_errors, kind limit)
            pong = await pb_grpc.PeerStub(channel).Ping(pb.PingRequest(client=1), metadata=AUTH,
                                                        timeout=BOUND)
            assert pong.round == 3  # still serving
        never.set()
        await network.aclose()

    asyncio.run(scenario())


def test_a_bittorrent_object_over_the_plans_bulk_limit_is_refused_before_fetching():
    async def scenario():
        limits, options = _plan_and_options()
        network = await _served(GrpcNetwork(options), RecordingHandler())
        limit = limits.bulk_bytes
        ref = {"name": "model-r0-c1.safetensors", "info_hash": "0" * 40, "size": limit + 1,
               "sha256": "0" * 64, "metadata": ""}
        with pytest.raises(ProtocolError, match=f"claims {limit + 1} bytes"):
            await asyncio.wait_for(network.bulk.into(
                Blob("model", 0, 1, b"", {"torrent": ref, "sources": [1]})), BOUND)
        await network.aclose()

    asyncio.run(scenario())


def test_a_grpc_message_larger_than_one_frame_is_refused_unread():
    async def scenario():
        _, options = _plan_and_options()
        network = await _served(GrpcNetwork(options), RecordingHandler())
        big = pb.BlobFrame(header=pb.BlobHeader(kind="model", round=0, sender=1,
                                                nbytes=MAX_FRAME_BYTES + 1),
                           data=bytes(MAX_FRAME_BYTES + 1))

        async def one():
            yield big

        async with grpc.aio.insecure_channel(options.addresses[1]) as channel:
            stub = pb_grpc.PeerStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.PutModel(one(), metadata=AUTH, timeout=BOUND)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            pong = await stub.Ping(pb.PingRequest(client=1), metadata=AUTH, timeout=BOUND)
            assert pong.round == 3  # still serving
        await network.aclose()

    asyncio.run(scenario())
