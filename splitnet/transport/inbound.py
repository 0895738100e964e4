"""The receiving side of the direct tensor channel: hello, limits, messages, refusals.

The wire format is described in :mod:`splitnet.transport.channel`.

Note: channel limits. A sender may not hold the receiver's memory or time without bound:

* at most ``max_greeting`` connections at a time may be waiting for their hello (each at most
  ``hello_seconds``); one more is answered "too many" and closed;
* one connection per client number: a newer authenticated connection from the same number
  replaces the older one (a sender that reconnects after a network error is not locked out by
  its own half-open connection), and at most ``max_peers`` client numbers are connected;
* once a message's header length arrived, the rest of the message must arrive within
  ``read_seconds``, or the connection is cut off (idle time between messages is free);
* a tensor of more than ``max_tensor_bytes`` is refused from its header, before any data;
* every refusal is written with back-pressure (``drain``) and logged at most once per second
  per peer (Note: bounded refusal log).

A refused message (wrong task, round, shape, or a sender other than the connection's client)
is answered and the connection goes on; a message that breaks these limits or the framing is
answered, logged, and its connection closed. The listener keeps serving everybody else.

Note: channel TLS. With TLS the listener's sockets are TLS 1.3 from the first byte (the
handshake must end within ``hello_seconds``): the sender must present a certificate of the
cluster CA, and its client number is the one the certificate names; the hello's number must
match it (else a refusal counted ``auth``) and its token proof is ignored. Nothing captured on
the wire can be replayed (a fresh handshake each time). A failed handshake never reaches this
code: asyncio's TLS layer closes the connection (not counted). The handshake is not done with
``StreamWriter.start_tls`` after accepting: bytes that arrive before it is called (the sender's
ClientHello, when the receiver is slow) stay in the plain reader and the handshake hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import struct
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from splitnet.errors import ProtocolError, SplitnetError
from splitnet.transport.base import Receive, Reject
from splitnet.transport.codec import MAX_TENSOR_BYTES
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.serde import checked_tensor_size, task_message
from splitnet.transport.status import RefusalLog, kind_of, task_label
from splitnet.transport.tls import client_number

__all__ = ["HELLO", "MAGIC", "U32", "VERSION", "ChannelLimits", "Inbound", "proof"]

log = logging.getLogger("splitnet.transport")
MAGIC = b"SPLT"
VERSION = 1
HELLO = struct.Struct(">4sHI32s")
U32 = struct.Struct(">I")
MAX_HEADER_BYTES = 64 * 1024


def proof(token: str) -> bytes:
    """Return the hello's proof that the sender holds the cluster token."""
    return hmac.new(token.encode(), b"splitnet tensor channel", hashlib.sha256).digest()


@dataclass(frozen=True)
class ChannelLimits:
    """What a listener accepts (Note: channel limits); the node may pass what its plan allows."""

    max_tensor_bytes: int = MAX_TENSOR_BYTES
    read_seconds: float = 60.0
    hello_seconds: float = 10.0
    max_greeting: int = 8
    max_peers: int = 64


class Inbound:
    """Serve the connections of one client's listener (Note: channel limits)."""

    def __init__(self, me: int, token: str, limits: ChannelLimits, receive: Receive,
                 on_reject: Reject | None, tls: bool = False) -> None:
        self.me, self.limits = me, limits
        self._tls = tls  # Note: channel TLS
        self._proof = proof(token)
        self._receive, self._on_reject = receive, on_reject
        self._greeting = 0
        self._peers: dict[int, asyncio.Task[None]] = {}
        self._log = RefusalLog(log)
        self.serving: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until it ends, breaks a limit or the channel closes."""
        task = asyncio.current_task()
        assert task is not None
        self.serving.add(task)
        where = _address(writer)
        peer = 0
        try:
            peer = await self._greet(reader, writer, where)
            if peer:
                await self._receive_from(peer, where, reader, writer)
        except (OSError, EOFError, asyncio.IncompleteReadError):
            pass  # the sender went away (or took too long to say hello); its side reports why
        except ProtocolError as exc:
            self._refused()
            self._log.warning(str(peer or where), f"client {self.me} closed a tensor "
                              f"channel from {_who(peer, where)}: {exc}")
            await _answer(writer, exc)
        except asyncio.CancelledError:
            pass  # closing, or replaced; ending normally keeps asyncio from logging it
        finally:
            writer.close()
            self.serving.discard(task)
            if peer and self._peers.get(peer) is task:
                del self._peers[peer]

    def _refused(self) -> None:
        """Count one input refused by a limit or the framing (``on_reject``, kind ``limit``)."""
        if self._on_reject:
            self._on_reject("TensorChannel", "limit")

    async def _greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     where: str) -> int:
        """Return the client number of an accepted hello, or 0 (answered and to be closed)."""
        if self._greeting >= self.limits.max_greeting:
            reason = (f"too many connections waiting for their hello (limit "
                      f"{self.limits.max_greeting})")
            self._refused()
            self._log.warning(where, f"client {self.me} refused a tensor channel "
                              f"connection from {where}: {reason}")
            writer.write(_reason(reason))
            return 0
        self._greeting += 1
        try:
            peer = await asyncio.wait_for(self._secure_hello(reader, writer),
                                          self.limits.hello_seconds)
        finally:
            self._greeting -= 1
        if peer:
            task = asyncio.current_task()
            assert task is not None
            older = self._peers.get(peer)
            if older is None and len(self._peers) >= self.limits.max_peers:
                raise ProtocolError(f"more than {self.limits.max_peers} clients connected")
            if older is not None:
                older.cancel()  # newest wins (Note: channel limits)
            self._peers[peer] = task
        return peer

    async def _secure_hello(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> int:
        """Read the hello; with TLS, against the certificate's client (Note: channel TLS)."""
        certified = None
        if self._tls:
            subject = dict(item for rdn in (writer.get_extra_info("peercert") or {}).get(
                "subject", ()) for item in rdn)
            certified = client_number(subject.get("commonName"))
        return await self._hello(reader, writer, certified)

    async def _hello(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     certified: int | None) -> int:
        magic, version, peer, token_proof = HELLO.unpack(await reader.readexactly(HELLO.size))
        reason = ""
        if magic != MAGIC or version != VERSION:
            reason = f"not a splitnet tensor channel hello (version {VERSION} expected)"
        elif self._tls:
            if certified is None or certified != peer:
                reason = (f"the hello claims client {peer}, the certificate names "
                          f"{f'client {certified}' if certified else 'no client'}")
                if self._on_reject:
                    self._on_reject("TensorChannel", "auth")
        elif not hmac.compare_digest(token_proof, self._proof):
            reason = "missing or wrong cluster token (SPLITNET_TOKEN)"
            if self._on_reject:
                self._on_reject("TensorChannel", "auth")
        writer.write(_reason(reason))
        await writer.drain()
        return 0 if reason else int(peer)

    async def _receive_from(self, peer: int, where: str, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        seconds = self.limits.read_seconds
        while True:
            try:
                (n,) = U32.unpack(await reader.readexactly(4))
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return  # a clean end between messages
            try:
                header, data = await asyncio.wait_for(self._rest(peer, n, reader), seconds)
            except TimeoutError:
                raise ProtocolError(f"a message was not complete {seconds:g}s after its header "
                                    "length arrived (read deadline)") from None
            try:
                if header.sender != peer:  # the connection's client, proven at its hello
                    if self._on_reject:
                        self._on_reject("TensorChannel", "auth")
                    raise ProtocolError(f"the message names sender {header.sender}, but the "
                                        f"connection is client {peer}'s")
                await self._receive(task_message(header, data))
            except SplitnetError as exc:
                label = task_label(header.owner, header.stage, header.batch)
                self._log.warning(str(peer), f"client {self.me} refused {label} from "
                                  f"{_who(peer, where)}: {exc}")
                writer.write(_refusal(kind_of(exc), f"{label}: {exc}"))
                await writer.drain()  # back-pressure: a flood of refusals waits for its sender

    async def _rest(self, peer: int, n: int, reader: asyncio.StreamReader) -> tuple[
            pb.TaskHeader, bytes]:
        """Read the header of ``n`` bytes and the data it announces (both checked first)."""
        if n > MAX_HEADER_BYTES:
            raise ProtocolError(f"a {n}-byte header (limit {MAX_HEADER_BYTES})")
        try:
            header = pb.TaskHeader.FromString(await reader.readexactly(n))
        except DecodeError:
            raise ProtocolError("a header that is not a TaskHeader") from None
        label = task_label(header.owner, header.stage, header.batch)
        try:
            size = checked_tensor_size(header, self.limits.max_tensor_bytes)
        except ProtocolError as exc:
            raise ProtocolError(f"{label}: {exc}") from None
        return header, await reader.readexactly(size)


def _address(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    return f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)


def _who(peer: int, where: str) -> str:
    return f"client {peer} ({where})" if peer else where


def _reason(reason: str) -> bytes:
    answer = reason.encode()
    return U32.pack(len(answer)) + answer


def _refusal(kind: str, error: str) -> bytes:
    return _reason(json.dumps({"kind": kind, "error": error}))


async def _answer(writer: asyncio.StreamWriter, exc: ProtocolError) -> None:
    """Tell an authenticated sender why its connection is closed (best effort, bounded)."""
    if writer.is_closing():
        return
    writer.write(_refusal(kind_of(exc), str(exc)))
    with contextlib.suppress(OSError, TimeoutError):  # it is being closed anyway
        await asyncio.wait_for(writer.drain(), 1.0)
