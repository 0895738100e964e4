"""The direct channel's limits on real loopback sockets (Note: channel limits).

A stalled sender is cut off, an oversize tensor is refused from its header, extra connections
are refused, a flood of refused messages writes a bounded number of log lines; the listener
keeps serving a good peer afterwards.
"""

from __future__ import annotations

import asyncio
import logging

import torch

from splitnet.errors import ProtocolError
from splitnet.transport.channel import HELLO, MAGIC, VERSION, ChannelLimits, TensorChannel, _proof
from splitnet.transport.inbound import U32
from splitnet.transport.messages import TaskMessage
from splitnet.transport.serde import task_header

BOUND = 10.0  # a hang guard, not a timing assertion


async def _until(condition, seconds=BOUND):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def _listener(limits, handle=None):
    got: list[TaskMessage] = []

    async def receive(msg):
        if handle is not None:
            await handle(msg)
        got.append(msg)

    receiver = TensorChannel(2, "test-token-0123456789", limits)
    port = await receiver.start("127.0.0.1", 0, receive, lambda failure: None)
    return receiver, port, got


async def _raw(port, client=1, hello=True):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if hello:
        writer.write(HELLO.pack(MAGIC, VERSION, client, _proof("test-token-0123456789")))
        assert await reader.readexactly(4) == b"\0\0\0\0"
    return reader, writer


def _header(shape, batch=0):
    header = task_header(TaskMessage(1, 3, batch, 0, 1, torch.zeros(shape))).SerializeToString()
    return U32.pack(len(header)) + header


async def _good_peer_is_served(port, got, batch=99):
    sender = TensorChannel(1, "test-token-0123456789")
    await sender.start("127.0.0.1", 0, lambda msg: None, lambda failure: None)
    sender.learn(2, "127.0.0.1", port)
    sender.send(2, TaskMessage(1, 3, batch, 0, 1, torch.ones(3)))
    await _until(lambda: any(m.batch == batch for m in got))
    await sender.aclose()


def test_a_sender_that_stalls_inside_a_message_is_cut_off_after_the_read_deadline(caplog):
    async def scenario():
        receiver, port, got = await _listener(ChannelLimits(read_seconds=0.2))
        reader, writer = await _raw(port)
        writer.write(_header(1000) + b"\0" * 10)  # announces 4000 bytes, sends 10, stalls
        rest = await asyncio.wait_for(reader.read(), BOUND)  # closed by the listener
        assert b"read deadline" in rest and got == []
        writer.close()
        await _good_peer_is_served(port, got)
        await receiver.aclose()

    with caplog.at_level(logging.WARNING, "splitnet.transport"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "read deadline" in r.getMessage()]
    assert len(lines) == 1 and "client 1 (127.0.0.1:" in lines[0]


def test_an_idle_connection_between_messages_is_not_cut_off():
    async def scenario():
        receiver, port, got = await _listener(ChannelLimits(read_seconds=0.05))
        _, writer = await _raw(port)
        await asyncio.sleep(0.3)  # idle between messages: longer than the read deadline
        writer.write(_header(2) + bytes(8))
        await _until(lambda: got)
        writer.close()
        await receiver.aclose()

    asyncio.run(scenario())


def test_a_tensor_larger_than_the_limit_is_refused_from_its_header():
    async def scenario():
        receiver, port, got = await _listener(ChannelLimits(max_tensor_bytes=1024))
        reader, writer = await _raw(port)
        writer.write(_header(1000))  # 4000 bytes announced, none sent: refused without waiting
        rest = await asyncio.wait_for(reader.read(), BOUND)
        assert b"task 1_3 batch 0" in rest and b"exceeds the limit of 1024" in rest
        writer.close()
        await _good_peer_is_served(port, got)  # 12 bytes: within the limit
        await receiver.aclose()

    asyncio.run(scenario())


def test_connections_beyond_the_hello_limit_are_refused_and_the_listener_keeps_serving():
    async def scenario():
        receiver, port, got = await _listener(ChannelLimits(max_greeting=2))
        silent = [await _raw(port, hello=False) for _ in range(2)]
        await _until(lambda: receiver._inbound._greeting == 2)
        reader, writer = await _raw(port, hello=False)
        rest = await asyncio.wait_for(reader.read(), BOUND)
        assert b"too many connections waiting for their hello (limit 2)" in rest
        writer.close()
        for _, silent_writer in silent:
            silent_writer.close()
        await _until(lambda: receiver._inbound._greeting == 0)
        await _good_peer_is_served(port, got)
        await receiver.aclose()

    asyncio.run(scenario())


def test_a_newer_connection_from_the_same_client_replaces_the_older_one():
    async def scenario():
        receiver, port, got = await _listener(ChannelLimits())
        old_reader, old_writer = await _raw(port, client=1)
        _, new_writer = await _raw(port, client=1)
        assert await asyncio.wait_for(old_reader.read(), BOUND) == b""  # closed by the listener
        new_writer.write(_header(2, batch=5) + bytes(8))
        await _until(lambda: [m.batch for m in got] == [5])
        for writer in (old_writer, new_writer):
            writer.close()
        await receiver.aclose()

    asyncio.run(scenario())


def test_more_connected_clients_than_the_limit_are_refused():
    async def scenario():
        receiver, port, got = await _listener(ChannelLimits(max_peers=1))
        _, first = await _raw(port, client=1)
        reader, writer = await _raw(port, client=3)
        rest = await asyncio.wait_for(reader.read(), BOUND)
        assert b"more than 1 clients connected" in rest
        writer.close()
        first.write(_header(2, batch=7) + bytes(8))  # the connected client is still served
        await _until(lambda: [m.batch for m in got] == [7])
        first.close()
        await receiver.aclose()

    asyncio.run(scenario())


def test_a_flood_of_refused_messages_writes_few_log_lines_and_the_channel_still_serves(caplog):
    async def handle(msg):
        if msg.batch < 500:
            raise ProtocolError("task 1_3 runs on client 4, not on client 2")

    async def scenario():
        receiver, port, got = await _listener(ChannelLimits(), handle)
        reader, writer = await _raw(port)
        writer.write(b"".join(_header(2, batch) + bytes(8) for batch in range(500)))
        for _ in range(500):  # every refusal is answered, in order
            (n,) = U32.unpack(await asyncio.wait_for(reader.readexactly(4), BOUND))
            await reader.readexactly(n)
        writer.write(_header(2, batch=500) + bytes(8))
        await _until(lambda: [m.batch for m in got] == [500])
        writer.close()
        await receiver.aclose()

    with caplog.at_level(logging.WARNING, "splitnet.transport"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "refused task 1_3" in r.getMessage()]
    assert 1 <= len(lines) <= 20  # one a second at most; 500 unbounded before
    assert "client 2 refused task 1_3 batch 0 from client 1 (127.0.0.1:" in lines[0]
