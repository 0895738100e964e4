"""Liveness: heartbeats ping every peer; one silent for ``PEER_TIMEOUT`` stops this client.

The failure names the silent peer (Note: one failure path (node)); what the client then does
depends on ``FAILURE_POLICY`` (:mod:`splitnet.node.rejoin`). Each beat also reports the
BitTorrent swarm's figures.
"""

from __future__ import annotations

import asyncio
import time

from splitnet.errors import PeerUnavailable, RuntimeFailure
from splitnet.node.state import Failure
from splitnet.telemetry.metrics import Metrics
from splitnet.transport.base import Network, PeerControl

__all__ = ["heartbeat"]


async def heartbeat(network: Network, metrics: Metrics, failure: Failure, peer_timeout: float,
                    finished: asyncio.Event) -> None:
    """Ping every peer until ``finished``; fail the client when one is silent too long."""
    interval = min(1.0, peer_timeout / 4)
    peers = network.peers
    last_ok = {k: time.monotonic() for k in peers}

    async def ping(k: int, peer: PeerControl) -> bool:
        try:
            await peer.ping(timeout=interval)
        except RuntimeFailure:
            metrics.error("timeout")
            return False
        last_ok[k] = time.monotonic()
        return True

    m = metrics
    while not finished.is_set():
        answered = await asyncio.gather(*(ping(k, p) for k, p in peers.items()))
        m.peers_up.labels(m.client).set(sum(answered))
        _report_torrent(network, metrics)
        now = time.monotonic()
        for k, seen in last_ok.items():
            if now - seen > peer_timeout and not finished.is_set():
                failure.fail(PeerUnavailable(
                    f"client {k} ({peers[k].address}) stopped answering: no reply for "
                    f"{now - seen:.1f}s (PEER_TIMEOUT={peer_timeout:g}s)"))
                return
        await asyncio.sleep(interval)


def _report_torrent(network: Network, metrics: Metrics) -> None:
    stats = network.bulk.stats()
    if not stats:  # nothing goes over BitTorrent
        return
    m = metrics
    m.torrent_peers.labels(m.client).set(stats["peers"])
    m.torrent_upload_rate.labels(m.client).set(stats["upload_rate"])
    m.torrent_download_rate.labels(m.client).set(stats["download_rate"])
    m.torrent_served.labels(m.client).set(stats["uploaded"])
