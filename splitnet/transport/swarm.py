"""One client's BitTorrent swarm: its libtorrent session and where every peer's session listens.

Shared by the BitTorrent bulk transport and the BitTorrent tensor transport (both announce the
session's port at join as ``torrent_port``). The session is created by :meth:`Swarm.open`, when
the network starts serving, and closed (every torrent removed, its files deleted) by
:meth:`Swarm.close`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path

from splitnet.errors import PeerUnavailable, RuntimeFailure
from splitnet.transport.listen import listen_failure
from splitnet.transport.tls import Identity
from splitnet.transport.torrent import TorrentRef, TorrentSession

__all__ = ["Swarm", "dial_address", "remove_stale_workdirs"]

_log = logging.getLogger(__name__)
_WORKDIR_RE = re.compile(r"splitnet-torrents-(?P<me>[0-9]+)-(?P<pid>[0-9]+)-.*")


def remove_stale_workdirs(me: int, parent: Path | None = None) -> list[Path]:
    """Remove client ``me``'s torrent directories whose process is gone; return them.

    Note: stale torrent directories. A killed client cannot remove its working directory, so the
    next process of the same client number does: the directory's name carries the client number
    and the pid that made it (``splitnet-torrents-{me}-{pid}-*``). Only a directory of this
    client number whose pid no longer runs is removed; several clients (``splitnet local``) and
    several test clusters share one temp folder, and a live process keeps its directory.
    """
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    removed = []
    for path in parent.glob(f"splitnet-torrents-{me}-*"):
        match = _WORKDIR_RE.fullmatch(path.name)
        if match is None or int(match["me"]) != me or not path.is_dir() or path.is_symlink():
            continue
        if _running(int(match["pid"])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        _log.info("removed %d stale BitTorrent folder(s) of earlier client %d processes: %s",
                  len(removed), me, ", ".join(p.name for p in removed))
    return removed


def _running(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we can ask about: keep the folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid at all: keep it
    return True


def dial_address(peer: int, host: str) -> str:
    """Return the IP address to dial ``peer``'s session at ``host``: its IPv4 address first.

    Note: IPv4 first. A name with both (``localhost``: 127.0.0.1 and ::1) is dialled on IPv4,
    where a session listening on ``0.0.0.0`` takes it; an IPv6 address (``::1``) or a name with
    IPv6 alone is dialled on IPv6.
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise PeerUnavailable(f"client {peer}'s host {host!r} does not resolve: {exc}") from exc
    ipv4 = [info for info in infos if info[0] == socket.AF_INET]
    return str((ipv4 or infos)[0][4][0])


class Swarm:
    """A libtorrent session (opened on demand) plus the cluster's peer table."""

    def __init__(self, me: int, timeout: float, *, host: str = "0.0.0.0", port: int = 0,
                 utp: bool = False, workdir: Path | None = None,
                 identity: Identity | None = None) -> None:
        self.me = me
        self.identity = identity  # SSL torrents (Note: SSL torrents, in torrent.py)
        self.timeout = timeout
        self.addresses: dict[int, tuple[str, int]] = {}
        self._host, self._port, self._utp, self._workdir = host, port, utp, workdir
        self._session: TorrentSession | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def session(self) -> TorrentSession:
        """Return the open session (RuntimeFailure before :meth:`open`)."""
        if self._session is None:
            raise RuntimeFailure(f"client {self.me}'s BitTorrent session is not open")
        return self._session

    @property
    def port(self) -> int:
        """Return the session's listen port (0 before :meth:`open`)."""
        return self._session.port if self._session else 0

    def open(self) -> None:
        """Create the session, listening on the configured host and port."""
        workdir = self._workdir
        if workdir is None:
            remove_stale_workdirs(self.me)
            self._tmp = tempfile.TemporaryDirectory(
                prefix=f"splitnet-torrents-{self.me}-{os.getpid()}-")
            workdir = Path(self._tmp.name)
        try:
            self._session = TorrentSession(workdir, self._host, self._port, utp=self._utp,
                                           identity=self.identity)
        except OSError as exc:  # Note: bind failures (transport/listen.py)
            raise listen_failure(self.me, "BitTorrent peers", "TORRENT_PORT", self._host,
                                 self._port, exc) from None

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record where ``peer``'s session listens (libtorrent needs an IP address)."""
        if port:
            self.addresses[peer] = (dial_address(peer, host), port)

    async def fetch(self, ref: TorrentRef, sources: Iterable[int],
                    publisher: int | None = None) -> bytes:
        """Download ``ref`` from every known source other than this client.

        With ``publisher``, the other sources are fellow receivers of one publication: this
        client asks first for its own shard of the pieces (Note: shard first, in pieces.py).
        """
        sources = sorted(set(sources))
        peers = [self.addresses[k] for k in sources if k != self.me and k in self.addresses]
        receivers = [k for k in sources if k != publisher]
        shard = None
        if publisher is not None and self.me in receivers and len(receivers) > 1:
            shard = (receivers.index(self.me), len(receivers))
        return await self.session.fetch(ref, peers, self.timeout, shard)

    def remove(self, info_hash: str) -> None:
        """Remove one torrent and its files (nothing once closed)."""
        if self._session is not None:
            self._session.remove(info_hash)

    def disk_bytes(self) -> int:
        """Return the bytes the session's files take on disk."""
        return self._session.disk_bytes() if self._session else 0

    def stats(self) -> dict[str, int]:
        """Return the session's counters (see ``TorrentSession.stats``); empty when closed."""
        return self._session.stats() if self._session else {}

    def close(self) -> None:
        """Remove every torrent and the working directory; idempotent."""
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
