"""The direct tensor channel: activations and gradients on one TCP stream per pair of clients.

Note: direct channel. A hop over gRPC costs ~0.5 ms of CPU (grpc's own threads hand every
message to the event loop); on a small model that is more than the step it feeds, and a batch
whose partitions run on other clients makes four hops. Here the event loop reads and writes the
socket itself: a length-prefixed protobuf ``TaskHeader`` followed by the tensor's raw bytes
(no pickle; the header is checked before any data is read, as on the gRPC path). gRPC stays
for everything else (join, heartbeats, round ends, bulk), and ``ACTIVATION_TRANSPORT=grpc``
sends activations over a long-lived gRPC stream instead. :class:`TensorChannel` implements
:class:`~splitnet.transport.base.TensorTransport`: ``send`` only queues, and every failure
reaches ``on_failure`` as a :class:`~splitnet.errors.TransferFailed` naming the peer (Note: one
failure path).

Wire format (integers big-endian):

* with TLS (a TLS identity; Note: channel TLS in :mod:`~splitnet.transport.inbound`), the
  connection is first upgraded to mutual TLS 1.3 and everything below travels inside it;
* hello, connecting side: ``b"SPLT"``, u16 version, u32 client, 32-byte HMAC-SHA256 of the
  cluster token over ``b"splitnet tensor channel"`` (without TLS it proves the sender holds the
  token, unencrypted and replayable, like gRPC's bearer token; with TLS it is zeros and the
  certificate proves the client).
* answer: u32 0 when accepted; otherwise u32 n and n bytes of UTF-8 reason, then close.
* message: u32 header length, ``TaskHeader`` bytes, tensor bytes (the header's ``nbytes``).
* refusal, back to the sender: u32 n and n bytes of JSON ``{"kind", "error"}`` for a message
  that does not fit the plan. A message that breaks the framing or the listener's limits
  (size, read deadline, connections; Note: channel limits in :mod:`~splitnet.transport.inbound`)
  gets one as well, and its connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl

from splitnet.errors import (
    PeerUnavailable,
    SplitnetError,
    TransferFailed,
)
from splitnet.transport.base import AsyncClosing, Fail, Receive, Reject
from splitnet.transport.codec import tensor_view
from splitnet.transport.inbound import HELLO, MAGIC, U32, VERSION, ChannelLimits, Inbound, proof
from splitnet.transport.listen import listen_failure, listen_socket
from splitnet.transport.messages import TaskMessage
from splitnet.transport.serde import task_header
from splitnet.transport.status import refused, reported, task_label, transfer_failed
from splitnet.transport.tls import Identity, client_name

__all__ = ["HELLO", "MAGIC", "VERSION", "ChannelLimits", "TensorChannel"]

log = logging.getLogger("splitnet.transport")
_proof = proof


class _Link:
    """A connection to one peer: messages written in order, refusals read back."""

    def __init__(self, channel: TensorChannel, peer: int, host: str, port: int) -> None:
        self.channel, self.peer, self.where = channel, peer, f"{host}:{port}"
        self.closed = False
        self._writer: asyncio.StreamWriter | None = None
        self._backlog: list[TaskMessage] = []
        self._task = asyncio.ensure_future(self._run(host, port))

    def send(self, msg: TaskMessage) -> None:
        if self._writer is None:
            self._backlog.append(msg)
            return
        assert msg.tensor is not None, "the direct channel carries tensors, not references"
        try:
            header = task_header(msg).SerializeToString()
        except SplitnetError as exc:  # a dtype that may not be sent
            self.channel.fail(transfer_failed(self.peer, self.where, "was not sent "
                                              f"{task_label(msg.owner, msg.stage, msg.batch)}",
                                              exc))
            return
        parts = [U32.pack(len(header)), header, tensor_view(msg.tensor)]
        if self.channel.identity is not None:  # one buffer: one run of TLS records, not three
            self._writer.write(b"".join(parts))
        else:
            self._writer.writelines(parts)

    async def _run(self, host: str, port: int) -> None:
        channel = self.channel
        writer: asyncio.StreamWriter | None = None
        try:
            identity = channel.identity
            if identity is None:
                reader, writer = await asyncio.open_connection(host, port)
            else:  # Note: channel TLS (transport/inbound.py)
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=identity.client_context(),
                    server_hostname=client_name(self.peer),
                    ssl_handshake_timeout=channel.limits.hello_seconds)
            token_proof = bytes(32) if identity is not None else _proof(channel.token)
            writer.write(HELLO.pack(MAGIC, VERSION, channel.me, token_proof))
            (n,) = U32.unpack(await reader.readexactly(4))
            if n:
                reason = (await reader.readexactly(min(n, 4096))).decode(errors="replace")
                raise PeerUnavailable(f"client {self.peer} ({self.where}) refused the tensor "
                                      f"channel: {reason}")
            self._writer = writer
            for msg in self._backlog:
                self.send(msg)
            self._backlog.clear()
            while True:
                (n,) = U32.unpack(await reader.readexactly(4))
                refusal = json.loads(await reader.readexactly(n))
                channel.fail(refused(self.peer, self.where, str(refusal.get("kind")),
                                     str(refusal.get("error"))))
        except asyncio.CancelledError:
            raise
        except SplitnetError as exc:
            channel.fail(reported(exc))
        except (OSError, EOFError, ValueError) as exc:
            if not channel.closing:
                channel.fail(reported(PeerUnavailable(
                    f"client {self.peer} ({self.where}): tensor channel ended: "
                    f"{type(exc).__name__}: {exc}")))
        finally:
            self.closed = True
            if writer is not None:
                writer.close()

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class TensorChannel(AsyncClosing):
    """One client's end of the direct channel: a listener and a link per peer it sends to."""

    def __init__(self, me: int, token: str, limits: ChannelLimits | None = None,
                 identity: Identity | None = None) -> None:
        self.me = me
        self.token = token
        self.identity = identity  # mutual TLS instead of the token's hello
        self.limits = limits or ChannelLimits()
        self.closing = False
        self._on_failure: Fail | None = None
        self._inbound: Inbound | None = None
        self._server: asyncio.Server | None = None
        self._links: dict[int, _Link] = {}
        self._addresses: dict[int, tuple[str, int]] = {}

    async def start(self, host: str, port: int, receive: Receive, on_failure: Fail,
                    on_reject: Reject | None = None) -> int:
        """Listen on ``host:port`` (0: any free port), handing messages to ``receive``.

        Return the port. ``on_failure`` gets every failure of this client's sends;
        ``on_reject`` is told of every connection or message the listener refuses. What the listener
        accepts is bounded by ``limits`` (Note: channel limits).
        """
        self._on_failure = on_failure
        context = self.identity.server_context() if self.identity is not None else None
        if context is not None and on_reject is not None:
            context.sslobject_class = _counting_handshakes(on_reject)
        self._inbound = Inbound(self.me, self.token, self.limits, receive, on_reject,
                                tls=context is not None)
        try:
            sock = listen_socket(host, port)  # Note: every interface (transport/listen.py)
            where = {"sock": sock} if sock is not None else {"host": host, "port": port}
            self._server = await asyncio.start_server(
                self._inbound.serve, ssl=context,
                ssl_handshake_timeout=self.limits.hello_seconds if context else None, **where)
        except OSError as exc:  # Note: bind failures (transport/listen.py)
            raise listen_failure(self.me, "tensors", "TENSOR_PORT", host, port, exc) from None
        return self.port

    @property
    def port(self) -> int:
        """Return the port the listener is bound to (0 before :meth:`start`)."""
        return int(self._server.sockets[0].getsockname()[1]) if self._server else 0

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record where peer ``peer``'s channel listens."""
        if port:
            self._addresses[peer] = (host, port)

    def send(self, peer: int, msg: TaskMessage) -> None:
        """Queue ``msg`` for ``peer`` (connecting on first use); failures go to ``on_failure``."""
        link = self._links.get(peer)
        if link is None or link.closed:
            if peer not in self._addresses:
                self.fail(reported(PeerUnavailable(
                    f"client {peer} announced no tensor channel; "
                    f"{task_label(msg.owner, msg.stage, msg.batch)} was not sent")))
                return
            link = self._links[peer] = _Link(self, peer, *self._addresses[peer])
        link.send(msg)

    def fail(self, failure: TransferFailed) -> None:
        """Report one failure (logged when nobody listens yet)."""
        if self._on_failure is None:
            log.warning("client %d: %s", self.me, failure)
        else:
            self._on_failure(failure)

    async def aclose(self) -> None:
        """Close every link and the listener; idempotent."""
        self.closing = True
        for link in self._links.values():
            await link.aclose()
        serving = list(self._inbound.serving) if self._inbound else []
        for task in serving:
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def _counting_handshakes(on_reject: Reject) -> type[ssl.SSLObject]:
    """Return an SSL object class that counts a failed TLS handshake as an ``auth`` refusal.

    Note: refused handshakes. The listener's sockets are TLS from the first byte, so a peer
    without a certificate of the cluster CA never reaches :class:`Inbound`: asyncio ends the
    connection (logging nothing unless in debug mode). Each such refusal is counted here, where
    the handshake fails.
    """

    class CountingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError:
                on_reject("TensorChannel", "auth")
                raise

    return CountingSSLObject
