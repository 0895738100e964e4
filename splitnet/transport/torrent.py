"""Bulk transfer over BitTorrent with an in-process libtorrent session (no daemon, no tracker).

One session per client. DHT, local service discovery, UPnP and NAT-PMP are off; peers are added
explicitly from the cluster's peer table; TCP only unless ``utp=True`` (uTP throttles hard on
fast links). Publishing writes the payload to a file, creates a torrent in-process and seeds it;
the torrent's metadata travels over the authenticated gRPC channel (see ``TorrentRef``).
Fetching adds the torrent, connects at once to every peer known to hold it (Note: connection
tick, in tracker.py), waits for completion and reads the file: libtorrent hash-checks every
piece against the metadata, and a piece that fails is never written as good (Note: no second hash).

Note: SSL torrents. With a TLS identity (TLS=on) every torrent is an SSL torrent: the cluster
CA's certificate is embedded in its metadata, the session listens on an SSL port only, and each
handle presents this client's certificate. libtorrent then talks to a peer only over TLS, after
both sides showed a certificate issued by that CA whose DNS names hold the torrent's name or
``*`` (``splitnet certs`` writes ``*``): a non-member that knows the info-hash and the port gets
no piece, and pieces are encrypted. A reference to a torrent that is not an SSL torrent of this
cluster's CA is refused before anything is added.

Note: everyone is rate-limited. libtorrent exempts LAN and loopback peers from rate limits by
default; the session puts every address into the global peer class so ``upload_limit`` (the
benchmarks' cap B) applies to cluster peers too.

Note: hashing. v1-only torrents: libtorrent 2's default hybrid hashes every byte twice (SHA-1,
SHA-256 tree); 64 MiB, best of 3, publish/fetch: hybrid 0.22/0.32 s, v1 0.17/0.25, v2 0.17/0.27.
~256 pieces (1-4 MiB pieces: fetch no faster, worse swarming). Seeds start with every piece
verified; plain seed mode re-hashes each piece on its first request.
Publishing hashes from memory (Note: hashing from memory, in torrent_ref.py).

This module does not import torch: benchmark receivers start fast.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import libtorrent as lt

from splitnet.errors import ProtocolError, TransferFailed
from splitnet.transport.pieces import ShardFirst, piece_size_for
from splitnet.transport.tls import Identity
from splitnet.transport.torrent_open import open_session
from splitnet.transport.torrent_ref import TorrentRef, make_torrent
from splitnet.transport.tracker import Tracker, tracker_keys

__all__ = ["TorrentRef", "TorrentSession", "piece_size_for"]

class TorrentSession:
    """One client's libtorrent session: publish, fetch, remove."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1", port: int = 0, *,
                 utp: bool = False, upload_limit: int = 0, download_limit: int = 0,
                 identity: Identity | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.identity = identity  # Note: SSL torrents
        self.session = open_session(host, port, identity is not None, utp=utp,
                                    upload_limit=upload_limit, download_limit=download_limit)
        everyone = lt.ip_filter()  # Note: everyone is rate-limited
        everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        everyone.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                          1 << lt.session.global_peer_class_id)
        self.session.set_peer_class_filter(everyone)
        self._tracker = Tracker()  # Note: connection tick (tracker.py)
        self._handles: dict[str, Any] = {}
        self._hash_failures: dict[str, int] = {}
        self._flushed: set[str] = set()

    @property
    def port(self) -> int:
        """Return the port the session listens on (its SSL port with a TLS identity)."""
        if self.identity is not None:
            return int(self.session.ssl_listen_port())
        return int(self.session.listen_port())

    # -- publish -------------------------------------------------------------------------------

    def publish(self, name: str, data: bytes) -> TorrentRef:
        """Write ``data`` as file ``name``, create its torrent and seed it."""
        folder = self.workdir / f"pub-{time.time_ns()}"
        folder.mkdir()
        ca = self.identity.ca_pem.decode() if self.identity is not None else None
        metadata, sha256 = make_torrent(data, name, folder, ca)  # Note: hashing from memory
        info = lt.torrent_info(metadata)
        info_hash = str(info.info_hashes().get_best())
        self._add(info, folder, seed=True, key=info_hash)
        return TorrentRef(name, info_hash, metadata, len(data), sha256)

    def _add(self, info: Any, folder: Path, *, seed: bool, key: str,
             peers: Sequence[tuple[str, int]] = ()) -> Any:
        params, params.ti = lt.add_torrent_params(), info
        if peers:  # Note: connection tick (tracker.py): dialled on the first announce
            self._tracker.register(tracker_keys(info.info_hashes()), peers)
            params.trackers = [self._tracker.url]
        params.peers = list(peers)
        params.save_path = str(folder)
        if seed:  # we hashed every piece a moment ago: no lazy re-hash on first request
            params.flags |= lt.torrent_flags.seed_mode
            params.verified_pieces = [True] * info.num_pieces()
        params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        handle = self.session.add_torrent(params)
        if self.identity is not None:  # Note: SSL torrents (no DH parameters: ECDHE only)
            i = self.identity
            handle.set_ssl_certificate_buffer(i.cert_pem.decode(), i.key_pem.decode(), "")
        self._handles[key] = (handle, folder)
        return handle

    # -- fetch ---------------------------------------------------------------------------------

    async def fetch(self, ref: TorrentRef, peers: Sequence[tuple[str, int]], timeout: float,
                    shard: tuple[int, int] | None = None) -> bytes:
        """Download ``ref`` from ``peers``; return the verified payload (it stays seeded).

        ``shard=(i, n)``: this is receiver i of n of one publisher (Note: shard first).
        """
        try:
            info = lt.torrent_info(ref.metadata)
        except RuntimeError as exc:
            raise ProtocolError(f"torrent metadata for {ref.name} does not parse: {exc}") from None
        if str(info.info_hashes().get_best()) != ref.info_hash or info.total_size() != ref.size:
            raise ProtocolError(f"torrent metadata for {ref.name} does not match its reference")
        ca = self.identity.ca_pem.decode().strip() if self.identity is not None else None
        if ca is not None and info.ssl_cert().strip() != ca:
            raise ProtocolError(f"torrent {ref.name} is not an SSL torrent of this cluster's CA; "
                                "with TLS=on only those are fetched")
        picker = None
        if ref.info_hash in self._handles:
            handle, folder = self._handles[ref.info_hash]
        else:
            folder = self.workdir / f"get-{ref.info_hash[:16]}-{time.time_ns()}"
            folder.mkdir()
            handle = self._add(info, folder, seed=False, key=ref.info_hash, peers=peers)
            picker = ShardFirst(handle, info.num_pieces(), *shard) if shard else None
        deadline, next_connect, delay = time.monotonic() + timeout, time.monotonic() + 1.0, 0.002
        while not handle.status(0).is_seeding:  # 0: no piece lists, cheap to poll
            if picker is not None:
                picker.update()
            now = time.monotonic()
            self._drain_alerts()
            if now > deadline:
                error = self._timeout(ref, peers, timeout, handle)  # before the handle goes
                self.remove(ref.info_hash)
                raise error
            if now >= next_connect and handle.status(0).num_peers < len(peers):
                for peer in peers:  # peers may start late or come back: keep knocking
                    handle.connect_peer(peer)
                next_connect = now + 1.0
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.01)
        data = await self._read_written(handle, folder / ref.name, ref)
        if data is None:
            self.remove(ref.info_hash)
            raise TransferFailed(f"{ref.name} ({ref.info_hash[:12]}) was verified but its file "
                                 f"did not reach {ref.size} bytes; it was discarded")
        return data

    async def _read_written(self, handle: Any, path: Path, ref: TorrentRef) -> bytes | None:
        """Read the payload once libtorrent's writes reached the file; None if they never do.

        Note: verified is not written. ``is_seeding`` means every piece passed its hash check,
        but the last writes may still be queued: flush, wait for the flush alert, then read
        (on a thread: several fetches of one process read at once). Without the alert nothing
        is read: a file of the right length may still hold holes where writes are queued.

        Note: no second hash. The payload is not hashed again with SHA-256 (64 MiB: 0.045 s of
        0.25 s a fetch, and the aggregator pays it for every state). It is still safe: the
        metadata came over the authenticated control channel and names every piece's SHA-1;
        libtorrent writes a piece as good only after it matched, so a peer serving a wrong piece
        gets a hash failure and nothing (tests: a lying seeder, test_torrent.py). Forging a
        piece needs a SHA-1 second preimage (none is known); a collision needs the publisher's
        help, and the publisher is a member who could announce any payload anyway. The
        reference's ``sha256`` stays for the record.
        """
        for _ in range(3):
            self._flushed.discard(ref.info_hash)
            handle.flush_cache()
            deadline = time.monotonic() + 5.0
            while ref.info_hash not in self._flushed and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
                self._drain_alerts()
            if ref.info_hash not in self._flushed:
                continue  # no flush alert: the file may still lack queued writes; ask again
            data = await asyncio.to_thread(path.read_bytes)
            if len(data) == ref.size:
                return data
        return None

    def _timeout(self, ref: TorrentRef, peers: Sequence[tuple[str, int]], timeout: float,
                 handle: Any) -> TransferFailed:
        tried = ", ".join(f"{host}:{port}" for host, port in peers) or "none"
        failed = self._hash_failures.get(ref.info_hash, 0)
        bad = f"; {failed} piece(s) failed verification" if failed else ""
        progress = handle.status().progress * 100
        return TransferFailed(f"fetching {ref.name} ({ref.info_hash[:12]}, {ref.size} bytes) did "
                              f"not complete within TORRENT_TIMEOUT={timeout:g}s "
                              f"({progress:.0f}% done{bad}); peers tried: {tried}")

    def _drain_alerts(self) -> None:
        for alert in self.session.pop_alerts():
            if isinstance(alert, lt.hash_failed_alert):
                key = str(alert.handle.info_hashes().get_best())
                self._hash_failures[key] = self._hash_failures.get(key, 0) + 1
            elif isinstance(alert, lt.cache_flushed_alert):
                self._flushed.add(str(alert.handle.info_hashes().get_best()))

    # -- housekeeping --------------------------------------------------------------------------

    def remove(self, info_hash: str) -> None:
        """Stop seeding ``info_hash`` and delete its files."""
        entry = self._handles.pop(info_hash, None)
        if entry is None:
            return
        handle, folder = entry
        self._tracker.forget(tracker_keys(handle.info_hashes()))
        self.session.remove_torrent(handle)
        shutil.rmtree(folder, ignore_errors=True)

    def torrents(self) -> list[str]:
        """Return the info-hashes this session holds."""
        return list(self._handles)
    def uploaded(self, info_hash: str) -> int:
        """Return the payload bytes this session has uploaded for ``info_hash``."""
        entry = self._handles.get(info_hash)
        return int(entry[0].status().total_payload_upload) if entry else 0
    def stats(self) -> dict[str, int]:
        """Return connected peers, payload rates (bytes/s) and bytes served, over all torrents."""
        totals = {"peers": 0, "upload_rate": 0, "download_rate": 0, "uploaded": 0}
        for handle, _ in self._handles.values():
            status = handle.status()
            totals["peers"] += status.num_peers
            totals["upload_rate"] += status.upload_payload_rate
            totals["download_rate"] += status.download_payload_rate
            totals["uploaded"] += status.total_payload_upload
        return totals

    def disk_bytes(self) -> int:
        """Return the bytes the session's files take on disk."""
        return sum(p.stat().st_size for p in self.workdir.rglob("*") if p.is_file())

    def close(self) -> None:
        """Remove every torrent and its files."""
        for info_hash in list(self._handles):
            self.remove(info_hash)
        self._tracker.close()
