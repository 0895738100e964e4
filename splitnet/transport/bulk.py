"""Bulk data between clients: inline over gRPC, or announced over gRPC and moved by BitTorrent.

``BULK_TRANSPORT`` picks it for round-end replica states, averaged partitions and the initial
model: ``torrent``, ``grpc``, or ``auto`` (the default: BitTorrent for objects of at least
``BULK_TORRENT_MIN_MIB``, gRPC below; Note: auto bulk). ``ACTIVATION_TRANSPORT=torrent`` sends
activations and gradients this way too. With BitTorrent, a :class:`Blob` carries only the
torrent reference (metadata, size, SHA-256) in its JSON metadata; the receiver fetches from
every peer listed as a source, so a one-to-many publication swarms.

Note: torrent housekeeping. Every torrent is tagged with the round it belongs to. When a client
applies the averaged model of round r, everybody has finished with round r-1's model (the
aggregator pushes round r only after all clients loaded round r-1) and with round r's states
(the aggregator fetched them before averaging): those torrents are removed and their files
deleted, so disk use stays flat across rounds.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from splitnet.errors import PeerUnavailable
from splitnet.transport.messages import Blob
from splitnet.transport.torrent import TorrentRef, TorrentSession

__all__ = ["Bulk"]


class Bulk:
    """One client's bulk mover; ``session`` is None when nothing goes over BitTorrent."""

    def __init__(self, me: int, mode: str, timeout: float, *, host: str = "0.0.0.0",
                 port: int = 0, utp: bool = False, workdir: Path | None = None,
                 activations: bool = False, torrent_min_bytes: int = 0) -> None:
        self.me = me
        self.mode = mode
        # Note: auto bulk. Below a few MiB a torrent costs more than it saves: creating, hashing
        # and announcing it, and libtorrent's once-a-second connection tick (BENCHMARKS.md).
        self.torrent_min_bytes = torrent_min_bytes if mode == "auto" else 0
        use_torrent = mode in ("auto", "torrent")
        self.activations = activations
        self.timeout = timeout
        self.session: TorrentSession | None = None
        self.addresses: dict[int, tuple[str, int]] = {}
        self._rounds: dict[str, tuple[int, str]] = {}  # info-hash -> (round, kind)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if use_torrent or activations:
            if workdir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix=f"splitnet-torrents-{me}-")
                workdir = Path(self._tmp.name)
            self.session = TorrentSession(workdir, host, port, utp=utp)

    @property
    def port(self) -> int:
        """Return the torrent listen port (0 without a session)."""
        return self.session.port if self.session else 0

    def learn(self, client: int, host: str, port: int) -> None:
        """Record where peer ``client``'s torrent session listens (libtorrent needs an IP)."""
        if port:
            try:
                address = socket.gethostbyname(host)
            except OSError as exc:
                raise PeerUnavailable(f"client {client}'s host {host!r} does not resolve: "
                                      f"{exc}") from exc
            self.addresses[client] = (address, port)

    def out(self, kind: str, round_: int, data: bytes, meta: dict[str, Any] | None = None,
            sources: Iterable[int] = ()) -> Blob:
        """Return a blob carrying ``data`` inline, or a torrent reference to it."""
        meta = dict(meta or {})
        if (self.session is None or self.mode == "grpc"
                or len(data) < self.torrent_min_bytes):
            return Blob(kind, round_, self.me, data, meta)
        ref = self.session.publish(f"{kind}-r{round_}-c{self.me}.safetensors", data)
        self._rounds[ref.info_hash] = (self._tag(kind, round_), kind)
        meta.update(torrent=ref.to_json(), sources=sorted({self.me, *sources}))
        return Blob(kind, round_, self.me, b"", meta)

    async def into(self, blob: Blob) -> bytes:
        """Return the blob's payload, fetching it over BitTorrent when it is a reference."""
        if "torrent" not in blob.meta or self.session is None:
            return blob.data
        ref = TorrentRef.from_json(blob.meta["torrent"])
        sources = [int(k) for k in blob.meta.get("sources", [blob.sender]) if int(k) != self.me]
        peers = [self.addresses[k] for k in sources if k in self.addresses]
        data = await self.session.fetch(ref, peers, self.timeout)
        self._rounds[ref.info_hash] = (self._tag(blob.kind, blob.round), blob.kind)
        return data

    @staticmethod
    def _tag(kind: str, round_: int) -> int:
        return -1 if kind == "initial" else round_  # the initial model precedes round 0

    def publish_tensor_bytes(self, name: str, data: bytes) -> TorrentRef:
        """Publish an activation's bytes; the caller removes it once the receiver has it."""
        assert self.session is not None
        return self.session.publish(name, data)

    async def fetch_tensor_bytes(self, ref: TorrentRef, sender: int) -> bytes:
        """Fetch an activation's bytes from its sender, then drop the torrent."""
        assert self.session is not None
        try:
            return await self.session.fetch(ref, [self.addresses[sender]], self.timeout)
        finally:
            self.session.remove(ref.info_hash)

    def forget(self, info_hash: str) -> None:
        """Remove one torrent and its files."""
        if self.session is not None:
            self.session.remove(info_hash)
        self._rounds.pop(info_hash, None)

    def model_applied(self, round_: int) -> None:
        """Drop torrents nobody needs once round ``round_``'s model is everywhere (see Note)."""
        for info_hash, (tagged, kind) in list(self._rounds.items()):
            if tagged < round_ or (tagged == round_ and kind == "states"):
                self.forget(info_hash)

    def disk_bytes(self) -> int:
        """Return the bytes this client's torrents take on disk."""
        return self.session.disk_bytes() if self.session else 0

    def close(self) -> None:
        """Remove every torrent and the working directory."""
        if self.session is not None:
            self.session.close()
        if self._tmp is not None:
            self._tmp.cleanup()
