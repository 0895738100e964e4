"""The real network: a gRPC control server and clients, a tensor transport, a bulk transport.

``GrpcNetwork(options)`` implements :class:`~splitnet.transport.base.Network`. Nothing opens a
socket before :meth:`GrpcNetwork.serve`, which creates the resources in order (the libtorrent
session, the tensor listener, the gRPC server) on an :class:`~contextlib.AsyncExitStack`: if
one fails to start, those created before it are closed, and :meth:`GrpcNetwork.aclose` closes
them all in reverse order (then the peer clients).

``ACTIVATION_TRANSPORT`` picks the tensor transport: ``direct`` (the direct TCP channel, Note:
direct channel), ``grpc`` (Note: tensor stream) or ``torrent``. ``BULK_TRANSPORT`` picks the
bulk transport (Note: auto bulk). The libtorrent session exists when either uses BitTorrent,
and its port is announced at join as the bulk transport's ``port``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from splitnet.config.fields import DEFAULT_BULK_TORRENT_MIN_MIB
from splitnet.errors import RuntimeFailure
from splitnet.transport.base import (
    AsyncClosing,
    BulkTransport,
    Fail,
    PeerControl,
    PeerHandler,
    Reject,
    TensorTransport,
)
from splitnet.transport.bulk import (
    InlineBulk,
    TorrentBulk,
    broadcast_only,
    bulk_min_bytes,
    uses_swarm,
)
from splitnet.transport.channel import ChannelLimits, TensorChannel
from splitnet.transport.client import PeerClient
from splitnet.transport.codec import MAX_TENSOR_BYTES
from splitnet.transport.listen import check_listen_host, listen_failure
from splitnet.transport.messages import TaskMessage
from splitnet.transport.serde import MAX_BLOB_BYTES
from splitnet.transport.server import start_server
from splitnet.transport.stream import StreamTransport
from splitnet.transport.swarm import Swarm
from splitnet.transport.tls import Identity
from splitnet.transport.torrent_tensors import TorrentTensors, fetch_reference

__all__ = ["GrpcNetwork", "NetworkOptions", "host_of"]


@dataclass(frozen=True)
class NetworkOptions:
    """How one client reaches its peers (from the network and transport settings)."""

    me: int
    addresses: Sequence[str]  # addresses[k-1] is client k's host:port
    token: str
    listen_host: str = "0.0.0.0"
    activation_transport: str = "direct"  # direct | grpc | torrent
    bulk_transport: str = "auto"  # auto | torrent | grpc
    torrent_min_bytes: int = int(DEFAULT_BULK_TORRENT_MIN_MIB * 1024 * 1024)  # as the setting's
    torrent_port: int = 0
    torrent_timeout: float = 120.0
    torrent_utp: bool = False
    tensor_port: int = 0
    peer_timeout: float = 60.0
    workdir: Path | None = None  # where torrents live (None: a temporary directory)
    max_tensor_bytes: int = MAX_TENSOR_BYTES  # the largest tensor a peer may send (any transport)
    max_bulk_bytes: int = MAX_BLOB_BYTES  # the largest bulk object (gRPC or BitTorrent)
    left: frozenset[int] = frozenset()  # clients dropped from the run: never dialled
    identity: Identity | None = None  # mutual TLS (transport/tls.py); None: the token alone
    port_key: str = "GRPC_PORT"  # the setting that gave this client's own address's port


def host_of(address: str) -> str:
    """Return the host part of ``host:port`` (brackets of an IPv6 address removed)."""
    return address.rsplit(":", 1)[0].strip("[]")


class GrpcNetwork(AsyncClosing):
    """One client's network over gRPC, the direct channel and BitTorrent."""

    def __init__(self, options: NetworkOptions) -> None:
        o = options
        self.options = o
        self.me = o.me
        self._clients = {k: PeerClient(k, address, o.token, o.me, o.peer_timeout,
                                            o.max_bulk_bytes, o.identity)
                         for k, address in enumerate(o.addresses, 1)
                         if k != o.me and k not in o.left}
        self.peers: Mapping[int, PeerControl] = self._clients
        self._swarm = Swarm(o.me, o.torrent_timeout, host=o.listen_host, port=o.torrent_port,
                            utp=o.torrent_utp, workdir=o.workdir, identity=o.identity
                            ) if uses_swarm(o.bulk_transport, o.activation_transport) else None
        self.bulk: BulkTransport = InlineBulk(o.me) if self._swarm is None else TorrentBulk(
            self._swarm, bulk_min_bytes(o.bulk_transport, o.torrent_min_bytes), o.max_bulk_bytes,
            broadcast_only=broadcast_only(o.bulk_transport))
        self._channel: TensorChannel | None = None
        self._others: StreamTransport | TorrentTensors | None = None
        self.tensors: TensorTransport
        if o.activation_transport == "direct":
            self.tensors = self._channel = TensorChannel(
                o.me, o.token, ChannelLimits(max_tensor_bytes=o.max_tensor_bytes), o.identity)
        elif o.activation_transport == "grpc":
            self.tensors = self._others = StreamTransport(self._clients)
        elif o.activation_transport == "torrent":
            assert self._swarm is not None
            self.tensors = self._others = TorrentTensors(self._clients, self._swarm,
                                                         o.torrent_timeout + o.peer_timeout)
        else:
            raise ValueError(f"unknown activation transport {o.activation_transport!r}")
        self._stack: contextlib.AsyncExitStack | None = None
        self._closed = False

    @property
    def tensor_port(self) -> int:
        """Return where the direct channel listens (0 for the other tensor transports)."""
        return self._channel.port if self._channel else 0

    def learn(self, peer: int, torrent_port: int, tensor_port: int) -> None:
        """Record the ports ``peer`` announced at join, on the host of its address."""
        host = host_of(self.options.addresses[peer - 1])
        self.bulk.learn(peer, host, torrent_port)
        self.tensors.learn(peer, host, tensor_port)

    async def serve(self, handler: PeerHandler, on_failure: Fail,
                    on_reject: Reject | None = None) -> None:
        """Open the swarm, the tensor listener and the gRPC server, in that order."""
        if self._closed or self._stack is not None:
            raise RuntimeFailure(f"client {self.me}'s network is already serving or closed")
        o = self.options
        check_listen_host(o.listen_host)  # Note: bind failures (transport/listen.py)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self._close_clients)
            if self._swarm is not None:
                stack.callback(self._swarm.close)  # also when opening fails half way
                self._swarm.open()
            stack.push_async_callback(self.bulk.aclose)
            stack.push_async_callback(self.tensors.aclose)
            receive = handler.tensor
            if self._channel is not None:
                await self._channel.start(o.listen_host, o.tensor_port, receive, on_failure,
                                          on_reject)
            elif self._others is not None:
                self._others.start(on_failure)
            port = int(o.addresses[self.me - 1].rsplit(":", 1)[1])
            try:
                server, _ = await start_server(handler, o.listen_host, port, o.token,
                                               on_reject, receive, o.max_tensor_bytes,
                                               o.max_bulk_bytes, o.identity)
            except OSError as exc:  # Note: bind failures (transport/listen.py)
                raise listen_failure(self.me, "peers", o.port_key, o.listen_host, port,
                                     exc) from None
            stack.push_async_callback(server.stop, 0.5)
            self._stack = stack.pop_all()

    async def complete(self, msg: TaskMessage) -> None:
        """Fetch the bytes of a tensor that came as a BitTorrent reference.

        ProtocolError or TransferFailed when they cannot be had; nothing to do otherwise.
        """
        await fetch_reference(msg, self.me, self._swarm)

    async def _close_clients(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def aclose(self) -> None:
        """Close everything ``serve`` opened, in reverse order, then the peer clients."""
        self._closed = True
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        else:
            await self._close_clients()
