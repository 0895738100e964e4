"""The direct tensor channel with mutual TLS on real loopback sockets (Note: channel TLS).

A member's tensors arrive; a certificate of another CA, an expired one, a plaintext sender, a
hello or a message claiming another client (these two counted), and bytes captured from a real
connection and replayed are all refused, while the receiver keeps taking a member's tensors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
import time

import pytest
import torch

from splitnet.ops.certs import make_certs
from splitnet.transport.channel import TensorChannel
from splitnet.transport.inbound import HELLO, MAGIC, U32, VERSION
from splitnet.transport.messages import TaskMessage
from splitnet.transport.serde import task_header
from splitnet.transport.tls import Identity, TlsFiles, load_identity

from .capture import CapturingProxy

pytestmark = pytest.mark.integration
TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def ids(tmp_path_factory):
    """Identities of clients 1-3, client 1 of another CA, and an expired client 1."""
    root = tmp_path_factory.mktemp("tls")
    make_certs(root / "ours", [1, 2, 3])
    make_certs(root / "theirs", [1])
    make_certs(root / "old", [1], days=1,
               now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30))
    ours = {k: load_identity(TlsFiles.in_folder(root / "ours", k), k) for k in (1, 2, 3)}
    old = TlsFiles(root / "ours" / "ca.crt", root / "old" / "client1.crt",
                   root / "old" / "client1.key")
    expired = Identity(1, old, ours[1].ca_pem, old.cert.read_bytes(), old.key.read_bytes(),
                       dt.datetime.now(dt.timezone.utc))
    return {**ours, "theirs": load_identity(TlsFiles.in_folder(root / "theirs", 1), 1),
            "expired": expired}


async def _until(condition, seconds=10.0):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


class Receiver:
    """Client 2's listener with TLS; what it took and what it refused."""

    def __init__(self, identity):
        self.got: list[TaskMessage] = []
        self.rejected: list[tuple[str, str]] = []
        self.channel = TensorChannel(2, "", identity=identity)
        self.port = 0

    async def __aenter__(self):
        async def take(msg):
            self.got.append(msg)

        self.port = await self.channel.start("127.0.0.1", 0, take, [].append,
                                             lambda what, kind: self.rejected.append((what,
                                                                                       kind)))
        return self

    async def __aexit__(self, *exc):
        await self.channel.aclose()

    async def send_from(self, identity, batch, me=1, token=TOKEN):
        """Send one tensor as client ``me``; return the sender's failures."""
        errors = []
        sender = TensorChannel(me, token, identity=identity)
        await sender.start("127.0.0.1", 0, self.take_nothing, errors.append)
        sender.learn(2, "127.0.0.1", self.port)
        sender.send(2, TaskMessage(1, 3, batch, 0, me, torch.full((4,), float(batch))))
        await _until(lambda: errors or any(m.batch == batch for m in self.got))
        await asyncio.sleep(0.1)
        await sender.aclose()
        return errors

    @staticmethod
    async def take_nothing(msg):
        raise AssertionError("nothing is sent back")


def test_a_member_sends_over_tls_and_strangers_are_refused(ids):
    async def scenario():
        async with Receiver(ids[2]) as receiver:
            assert await receiver.send_from(ids[1], 0) == []
            assert [m.batch for m in receiver.got] == [0] and receiver.rejected == []
            for stranger, batch in ((ids["theirs"], 1), (ids["expired"], 2)):
                errors = await receiver.send_from(stranger, batch)
                assert errors  # the sender is told: its handshake failed
            errors = await receiver.send_from(None, 3)  # the old plaintext hello with the token
            assert errors
            assert await receiver.send_from(ids[1], 4) == []  # still serving members
            assert [m.batch for m in receiver.got] == [0, 4]
            # the listener counted the handshakes it refused: the expired certificate's and the
            # plaintext hello's (another CA's sender gives up by itself: it does not trust the
            # listener's certificate); a sender may retry, so at least one each
            assert len(receiver.rejected) >= 2
            assert set(receiver.rejected) == {("TensorChannel", "auth")}

    asyncio.run(scenario())


def test_a_member_claiming_another_number_is_refused(ids):
    async def scenario():
        async with Receiver(ids[2]) as receiver:
            # client 3's certificate, a hello saying client 1
            errors = await receiver.send_from(ids[3], 0, me=1)
            assert errors and "the hello claims client 1, the certificate names client 3" in \
                str(errors[0])
            # client 3's certificate and hello, a message naming client 1 as its sender
            reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
            await writer.start_tls(ids[3].client_context(), server_hostname="client2")
            writer.write(HELLO.pack(MAGIC, VERSION, 3, bytes(32)))
            assert U32.unpack(await reader.readexactly(4)) == (0,)
            msg = TaskMessage(1, 3, 1, 0, 1, torch.ones(4))
            header = task_header(msg).SerializeToString()
            writer.write(U32.pack(len(header)) + header + msg.tensor.numpy().tobytes())
            (n,) = U32.unpack(await reader.readexactly(4))
            assert b"names sender 1, but the connection is client 3" in \
                await reader.readexactly(n)
            writer.close()
            assert receiver.got == []
            assert receiver.rejected == [("TensorChannel", "auth")] * 2
            assert await receiver.send_from(ids[1], 5) == []

    asyncio.run(scenario())


def test_bytes_captured_from_a_real_connection_replay_to_nothing(ids):
    async def scenario():
        async with Receiver(ids[2]) as receiver:
            async with CapturingProxy(receiver.port) as proxy:  # a real sender, recorded
                errors = []
                sender = TensorChannel(1, "", identity=ids[1])
                await sender.start("127.0.0.1", 0, Receiver.take_nothing, errors.append)
                sender.learn(2, "127.0.0.1", proxy.port)
                sender.send(2, TaskMessage(1, 3, 7, 0, 1, torch.ones(4)))
                await _until(lambda: receiver.got)
                await sender.aclose()
            captured = proxy.captured
            assert errors == [] and len(captured) > 100
            reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
            writer.write(bytes(captured))  # the same bytes, again
            await writer.drain()
            assert await reader.read() == b""  # closed without a word
            writer.close()
            await asyncio.sleep(0.2)
            assert [m.batch for m in receiver.got] == [7]
            assert receiver.rejected == [("TensorChannel", "auth")]  # the replay, counted

    asyncio.run(scenario())


def test_a_listener_with_another_clients_certificate_is_not_sent_to(ids):
    async def scenario():
        async with Receiver(ids[3]) as receiver:  # client 3 listens where client 2 should
            errors = await receiver.send_from(ids[1], 0)
            assert errors and receiver.got == []
            assert "client2" in str(errors[0]) or "certificate" in str(errors[0]).lower()

    asyncio.run(scenario())


def test_a_slow_receiver_still_completes_the_handshake(ids):
    """The sender's ClientHello may be waiting before the receiver looks at the connection."""

    def send_blocking(port, done):
        context = ids[1].client_context()
        with (socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
              context.wrap_socket(raw, server_hostname="client2") as tls):
            tls.sendall(HELLO.pack(MAGIC, VERSION, 1, bytes(32)))
            assert tls.recv(4) == U32.pack(0)
            msg = TaskMessage(1, 3, 0, 0, 1, torch.ones(4))
            header = task_header(msg).SerializeToString()
            tls.sendall(U32.pack(len(header)) + header + msg.tensor.numpy().tobytes())
            done.set()
            time.sleep(0.5)

    async def scenario():
        async with Receiver(ids[2]) as receiver:
            done = threading.Event()
            sender = threading.Thread(target=send_blocking, args=(receiver.port, done))
            sender.start()
            time.sleep(0.5)  # the receiver's loop is busy while the ClientHello arrives
            await _until(lambda: receiver.got or not sender.is_alive(), seconds=15)
            sender.join(5)
            assert done.is_set() and [m.batch for m in receiver.got] == [0]

    asyncio.run(scenario())
