"""The in-memory network: order, one failure path, the gRPC error table, closing."""

from __future__ import annotations

import asyncio

import pytest
import torch

from splitnet.errors import (
    PeerUnavailable,
    PlanMismatch,
    ProtocolError,
    RuntimeFailure,
    TransferFailed,
)
from splitnet.transport.base import Network
from splitnet.transport.memory import MemoryHub, MemoryNetwork
from splitnet.transport.messages import Blob, TaskMessage

from ..handlers import RecordingHandler as Handler


async def _pair() -> tuple[MemoryNetwork, MemoryNetwork, Handler, list[TransferFailed]]:
    hub = MemoryHub()
    one, two = hub.network(1), hub.network(2)
    handler, failures = Handler(), []
    await one.serve(Handler(), failures.append)
    await two.serve(handler, failures.append)
    return one, two, handler, failures


async def _until(condition, seconds=2.0):
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def test_memory_network_implements_the_network_protocol():
    network: Network = MemoryHub().network(1)
    assert network.me == 1 and network.tensor_port == 0 and network.bulk.port == 0


def test_tensors_arrive_in_order_as_fresh_copies():
    async def scenario():
        one, two, handler, failures = await _pair()
        sent = [torch.randn(4, 3) for _ in range(20)]
        for batch, tensor in enumerate(sent):
            one.tensors.send(2, TaskMessage(1, 3, batch, 0, 1, tensor))
        await _until(lambda: len(handler.tensors) == len(sent))
        assert [m.batch for m in handler.tensors] == list(range(len(sent)))
        for msg, tensor in zip(handler.tensors, sent, strict=True):
            assert torch.equal(msg.tensor, tensor) and msg.tensor is not tensor
        assert failures == []
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_a_refusal_reaches_on_failure_naming_peer_and_task():
    async def scenario():
        one, two, handler, failures = await _pair()
        handler.refuse_batch = 0
        for batch in (0, 1):
            one.tensors.send(2, TaskMessage(1, 3, batch, 0, 1, torch.ones(2)))
        await _until(lambda: failures and handler.tensors)
        (failure,) = failures
        assert isinstance(failure, TransferFailed)
        assert "client 2" in str(failure) and "task 1_3 batch 0" in str(failure)
        assert isinstance(failure.__cause__, ProtocolError)
        assert [m.batch for m in handler.tensors] == [1]  # delivery goes on after a refusal
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_a_tensor_that_may_not_be_sent_fails_without_raising_into_send():
    async def scenario():
        one, two, handler, failures = await _pair()
        one.tensors.send(2, TaskMessage(1, 3, 0, 0, 1, torch.ones(2, dtype=torch.complex64)))
        await _until(lambda: failures)
        assert isinstance(failures[0], TransferFailed) and "client 2" in str(failures[0])
        assert isinstance(failures[0].__cause__, ProtocolError) and handler.tensors == []
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_control_calls_carry_wire_data():
    async def scenario():
        one, two, handler, _ = await _pair()
        facts = {"model": "cnn"}
        assert await one.peers[2].join("fp", facts, 5.0) == ("fp", {"clients": 2}, 0, 0, "")
        assert handler.facts == facts and handler.facts is not facts
        await one.peers[2].round_done(0, '{"owners": []}')
        assert handler.reports == [(1, 0, '{"owners": []}')]
        blob = Blob("model", 0, 1, b"xyz", {"k": [1]})
        await one.peers[2].put_model(blob)
        assert handler.models[0] == blob and handler.models[0].meta is not blob.meta
        assert (await one.peers[2].get_states(0)).data == b"abc"
        assert await one.peers[2].ping(1.0) == 3
        assert list(one.peers) == [2] and 1 not in one.peers
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("raised, expected", [
    (ProtocolError("bad report"), ProtocolError),
    (PlanMismatch("client 2's plan differs from client 1's in: model"), PlanMismatch),
    (RuntimeFailure("client 2 is not the aggregator"), RuntimeFailure),
    (PeerUnavailable("gone"), RuntimeFailure),  # the server answers ABORTED, as over gRPC
    (KeyError("owners"), RuntimeFailure),  # a bug: gRPC answers UNKNOWN
])
def test_control_errors_are_mapped_as_over_grpc(raised, expected):
    async def scenario():
        one, two, handler, _ = await _pair()
        handler.error = raised
        with pytest.raises(expected) as info:
            await one.peers[2].round_done(0, "{}")
        assert type(info.value) is expected and info.value.__cause__ is raised
        assert "client 2" in str(info.value)
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_a_peer_not_serving_is_unavailable_and_aclose_is_idempotent():
    async def scenario():
        hub = MemoryHub()
        one, two = hub.network(1), hub.network(2)
        failures: list[TransferFailed] = []
        await one.serve(Handler(), failures.append)
        with pytest.raises(PeerUnavailable, match="client 2"):
            await one.peers[2].ping(1.0)
        await two.serve(Handler(), failures.append)
        assert await one.peers[2].ping(1.0) == 3
        await two.aclose()
        await two.aclose()
        with pytest.raises(PeerUnavailable, match="client 2"):
            await one.peers[2].ping(1.0)
        one.tensors.send(2, TaskMessage(1, 3, 0, 0, 1, torch.ones(2)))
        await _until(lambda: failures)
        assert isinstance(failures[0].__cause__, PeerUnavailable)
        await one.aclose()
        await one.aclose()
        with pytest.raises(PeerUnavailable):
            await one.serve(Handler(), failures.append)

    asyncio.run(scenario())
