"""Bulk data between clients: inline, or announced inline and moved by BitTorrent.

The two :class:`~splitnet.transport.base.BulkTransport` implementations.

``BULK_TRANSPORT`` picks it for round-end replica states, averaged partitions and the initial
model: ``torrent``, ``grpc``, or ``auto`` (the default: BitTorrent for objects of at least
``BULK_TORRENT_MIN_MIB`` that several clients receive, inline otherwise; Note: auto bulk,
Note: one receiver goes inline). With BitTorrent, a :class:`Blob`
carries only the torrent reference (metadata, size, SHA-256) in its JSON metadata; the receiver
fetches from every peer listed as a source, so a one-to-many publication swarms.

Note: torrent housekeeping. Every torrent is tagged with the round it belongs to. When a client
applies the averaged model of round r, everybody has finished with round r-1's model (the
aggregator pushes round r only after all clients loaded round r-1) and with round r's states
(the aggregator fetched them before averaging): those torrents are removed and their files
deleted, so disk use stays flat across rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from splitnet.errors import ProtocolError
from splitnet.plan.rounds import INITIAL_ROUND
from splitnet.transport.base import AsyncClosing
from splitnet.transport.messages import Blob
from splitnet.transport.serde import MAX_BLOB_BYTES
from splitnet.transport.swarm import Swarm
from splitnet.transport.torrent import TorrentRef

__all__ = ["InlineBulk", "TorrentBulk", "broadcast_only", "bulk_min_bytes", "uses_swarm"]


def uses_swarm(bulk_mode: str, activation_mode: str) -> bool:
    """Return whether a client with these modes runs a BitTorrent swarm (and fetches torrents).

    ``BULK_TRANSPORT=grpc`` needs none, unless ``ACTIVATION_TRANSPORT=torrent`` does.
    """
    return bulk_mode in ("auto", "torrent") or activation_mode == "torrent"


def bulk_min_bytes(mode: str, torrent_min_bytes: int) -> float:
    """Return the size from which ``mode`` sends an object over BitTorrent (inf: never).

    Note: auto bulk. Below a few MiB a torrent costs more than it saves: creating, hashing and
    announcing it, and libtorrent's rate limiter's slow start (BENCHMARKS.md: with 8 MiB/s
    uplinks the exchange is faster by torrent from 2-4 MiB; the connection tick is gone, Note:
    connection tick in tracker.py). ``auto`` therefore sends smaller objects inline;
    ``torrent`` sends everything over BitTorrent.
    """
    return {"auto": float(torrent_min_bytes), "torrent": 0.0}.get(mode, math.inf)


def broadcast_only(mode: str) -> bool:
    """Return whether ``mode`` sends an object with one receiver inline whatever its size.

    Note: one receiver goes inline. A torrent pays off when its receivers seed to each other
    (the averaged model, the initial model: every client is a source). An object with a single
    receiver - a client's replica states for the aggregator, a reduce's part for one peer -
    has nobody to swarm with, and with TLS libtorrent's SSL torrents move it at about 0.4 x the
    rate of a plain torrent, where gRPC's TLS costs little (gather 4 x 45 MiB into one session:
    1.38 s SSL against 0.54 s plain; inside a ResNet18 run the states took 2.3 s by SSL
    torrent against 1.1 s by gRPC; BENCHMARKS.md, "Issue 17, session 8"). ``auto`` therefore
    sends it inline over the authenticated control channel (same TLS, same checks);
    ``torrent`` still sends everything over BitTorrent.
    """
    return mode == "auto"


class InlineBulk(AsyncClosing):
    """Every object travels inside the control call that carries its blob."""

    def __init__(self, me: int) -> None:
        self.me = me

    @property
    def port(self) -> int:
        """Return 0: nothing is served outside the control channel."""
        return 0

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record nothing: inline objects need no address."""

    def out(self, kind: str, round_: int, data: bytes, meta: Mapping[str, Any] | None = None,
            sources: Iterable[int] = ()) -> Blob:
        """Return a blob carrying ``data`` inline."""
        return Blob(kind, round_, self.me, data, dict(meta or {}))

    async def into(self, blob: Blob) -> bytes:
        """Return the blob's payload (ProtocolError for a torrent reference: none is fetched)."""
        if "torrent" in blob.meta:
            raise ProtocolError(f"client {self.me} got a torrent reference for a {blob.kind} "
                                f"object of round {blob.round} from client {blob.sender}, but "
                                "fetches no torrents (BULK_TRANSPORT=grpc); set the same "
                                "BULK_TRANSPORT on every client")
        return blob.data

    def model_applied(self, round_: int) -> None:
        """Drop nothing: nothing is kept."""

    def disk_bytes(self) -> int:
        """Return 0: nothing is on disk."""
        return 0

    def stats(self) -> dict[str, int]:
        """Return no counters."""
        return {}


class TorrentBulk(AsyncClosing):
    """Objects of at least ``min_bytes`` are published on the swarm; smaller ones go inline.

    With ``broadcast_only``, an object whose only source is this client (one receiver) goes
    inline whatever its size (Note: one receiver goes inline).

    The network opens and closes the swarm (it may carry activations too). A reference that
    claims more than ``max_bytes`` (the node can pass its model's size) is refused before
    anything is fetched.
    """

    def __init__(self, swarm: Swarm, min_bytes: float = 0.0,
                 max_bytes: int = MAX_BLOB_BYTES, *, broadcast_only: bool = False) -> None:
        self.me = swarm.me
        self.swarm = swarm
        self.min_bytes = min_bytes
        self.broadcast_only = broadcast_only  # Note: one receiver goes inline
        self.max_bytes = max_bytes
        self._rounds: dict[str, tuple[int, str]] = {}  # info-hash -> (round, kind)

    @property
    def port(self) -> int:
        """Return the torrent listen port."""
        return self.swarm.port

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record where ``peer``'s torrent session listens."""
        self.swarm.learn(peer, host, port)

    def out(self, kind: str, round_: int, data: bytes, meta: Mapping[str, Any] | None = None,
            sources: Iterable[int] = ()) -> Blob:
        """Return a blob carrying ``data`` inline or a torrent reference (Note: auto bulk)."""
        meta = dict(meta or {})
        sources = sorted({self.me, *sources})
        if len(data) < self.min_bytes or (self.broadcast_only and sources == [self.me]):
            return Blob(kind, round_, self.me, data, meta)
        ref = self.swarm.session.publish(f"{kind}-r{round_}-c{self.me}.safetensors", data)
        self._rounds[ref.info_hash] = (_tag(kind, round_), kind)
        meta.update(torrent=ref.to_json(), sources=sources)
        return Blob(kind, round_, self.me, b"", meta)

    async def into(self, blob: Blob) -> bytes:
        """Return the blob's payload, fetching it over BitTorrent when it is a reference."""
        if "torrent" not in blob.meta:
            return blob.data
        ref = TorrentRef.from_json(blob.meta["torrent"])
        if ref.size > self.max_bytes:
            raise ProtocolError(f"{blob.kind} object of round {blob.round} from client "
                                f"{blob.sender} claims {ref.size} bytes (limit {self.max_bytes})")
        sources = [int(k) for k in blob.meta.get("sources", [blob.sender])]
        data = await self.swarm.fetch(ref, sources, publisher=blob.sender)
        self._rounds[ref.info_hash] = (_tag(blob.kind, blob.round), blob.kind)
        return data

    def model_applied(self, round_: int) -> None:
        """Drop what nobody needs once ``round_``'s model is everywhere (see Note above)."""
        for info_hash, (tagged, kind) in list(self._rounds.items()):
            if tagged < round_ or (tagged == round_ and kind == "states"):
                self.swarm.remove(info_hash)
                del self._rounds[info_hash]

    def disk_bytes(self) -> int:
        """Return the bytes this client's torrents take on disk."""
        return self.swarm.disk_bytes()

    def stats(self) -> dict[str, int]:
        """Return the swarm's counters."""
        return self.swarm.stats()


def _tag(kind: str, round_: int) -> int:
    return INITIAL_ROUND if kind == "initial" else round_
