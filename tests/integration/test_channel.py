"""The direct tensor channel on real loopback sockets: round trip, token, refusals, framing."""

from __future__ import annotations

import asyncio
import struct

import pytest
import torch

from splitnet.errors import PeerUnavailable, ProtocolError, TransferFailed
from splitnet.transport.channel import TensorChannel
from splitnet.transport.messages import TaskMessage


async def _pair(handle, token_a="test-token-0123456789", token_b="test-token-0123456789"):
    rejected: list[tuple[str, str]] = []
    errors: list[TransferFailed] = []
    receiver = TensorChannel(2, token_b)
    port = await receiver.start("127.0.0.1", 0, handle, errors.append,
                                lambda what, kind: rejected.append((what, kind)))
    sender = await _sender(token_a, handle, errors, port)
    return sender, receiver, port, errors, rejected


async def _sender(token, handle, errors, port):
    sender = TensorChannel(1, token)
    await sender.start("127.0.0.1", 0, handle, errors.append)
    sender.learn(2, "127.0.0.1", port)
    return sender


async def _until(condition, seconds=5.0):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_tensors_arrive_bit_exact_and_in_order():
    got: list[TaskMessage] = []

    async def handle(msg):
        got.append(msg)

    async def scenario():
        sender, receiver, _, errors, _ = await _pair(handle)
        sent = [torch.randn(32, 16, 4, 4), torch.randn(3, 5).to(torch.bfloat16),
                torch.zeros(0, 7), torch.arange(10, dtype=torch.float64),
                torch.randn(8, 8).t()]  # a non-contiguous view
        for batch, tensor in enumerate(sent):
            sender.send(2, TaskMessage(1, 3, batch, 0, 1, tensor))
        await _until(lambda: len(got) == len(sent))
        assert [m.batch for m in got] == list(range(len(sent)))
        for msg, tensor in zip(got, sent, strict=True):
            assert msg.tensor.dtype == tensor.dtype and torch.equal(msg.tensor, tensor)
            assert (msg.owner, msg.stage, msg.sender) == (1, 3, 1)
        assert errors == []
        await sender.aclose()
        await receiver.aclose()

    asyncio.run(scenario())


def test_a_wrong_token_is_refused_and_the_listener_keeps_serving():
    got: list[TaskMessage] = []

    async def handle(msg):
        got.append(msg)

    async def scenario():
        bad, receiver, port, errors, rejected = await _pair(handle, token_a="wrong-token-0123456789")
        bad.send(2, TaskMessage(1, 3, 0, 0, 1, torch.ones(2)))
        await _until(lambda: errors)
        assert isinstance(errors[0], TransferFailed) and "client 2" in str(errors[0])
        assert isinstance(errors[0].__cause__, PeerUnavailable)
        assert "missing or wrong cluster token" in str(errors[0])
        assert rejected == [("TensorChannel", "auth")] and got == []
        good = await _sender("test-token-0123456789", handle, [], port)
        good.send(2, TaskMessage(1, 3, 1, 0, 1, torch.ones(2)))
        await _until(lambda: got)
        for channel in (bad, good, receiver):
            await channel.aclose()

    asyncio.run(scenario())


def test_a_refused_message_is_reported_to_its_sender_naming_the_task():
    got: list[TaskMessage] = []

    async def handle(msg):
        if msg.batch == 0:
            raise ProtocolError("task 1_3 runs on client 4, not on client 2")
        got.append(msg)

    async def scenario():
        sender, receiver, _, errors, _ = await _pair(handle)
        sender.send(2, TaskMessage(1, 3, 0, 0, 1, torch.ones(2)))
        sender.send(2, TaskMessage(1, 3, 1, 0, 1, torch.ones(2)))
        await _until(lambda: errors and got)
        assert isinstance(errors[0], TransferFailed) and "client 2" in str(errors[0])
        assert isinstance(errors[0].__cause__, ProtocolError)
        assert "task 1_3 batch 0" in str(errors[0]) and "client 4" in str(errors[0])
        assert [m.batch for m in got] == [1]  # the stream goes on after a refusal
        await sender.aclose()
        await receiver.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("junk", [struct.pack(">I", 10**6), struct.pack(">I", 3) + b"\xff\xff\xff",
                                  b"NOPE" + b"\0" * 38])
def test_broken_framing_closes_only_that_connection(junk):
    got: list[TaskMessage] = []

    async def handle(msg):
        got.append(msg)

    async def scenario():
        sender, receiver, port, errors, _ = await _pair(handle)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if not junk.startswith(b"NOPE"):
            from splitnet.transport.channel import HELLO, MAGIC, VERSION, _proof
            writer.write(HELLO.pack(MAGIC, VERSION, 3, _proof("test-token-0123456789")))
            assert await reader.readexactly(4) == b"\0\0\0\0"
        writer.write(junk)
        rest = await asyncio.wait_for(reader.read(), 5.0)  # the listener closes the connection
        assert junk.startswith(b"NOPE") == (b"not a splitnet tensor channel" in rest)
        writer.close()
        sender.send(2, TaskMessage(1, 3, 0, 0, 1, torch.ones(2)))  # others are still served
        await _until(lambda: got)
        assert errors == []
        await sender.aclose()
        await receiver.aclose()

    asyncio.run(scenario())


def test_send_never_raises_and_reports_what_cannot_go():
    async def handle(msg):
        raise AssertionError("nothing arrives")

    async def scenario():
        sender, receiver, _, errors, _ = await _pair(handle)
        sender.send(3, TaskMessage(1, 3, 0, 0, 1, torch.ones(2)))  # nobody announced client 3
        sender.send(2, TaskMessage(1, 3, 1, 0, 1, torch.ones(2, dtype=torch.complex64)))
        await _until(lambda: len(errors) == 2)
        assert all(isinstance(e, TransferFailed) for e in errors)
        assert "client 3" in str(errors[0]) and "task 1_3 batch 0" in str(errors[0])
        assert "client 2" in str(errors[1]) and "task 1_3 batch 1" in str(errors[1])
        assert isinstance(errors[1].__cause__, ProtocolError)
        for channel in (sender, receiver):
            await channel.aclose()
            await channel.aclose()

    asyncio.run(scenario())
