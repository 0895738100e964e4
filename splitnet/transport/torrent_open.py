"""Opening a client's libtorrent session: its settings and where it listens.

The session's docs are in ``torrent.py``; the bind rules in ``listen.py`` (Note: bind failures,
Note: every interface).
"""

from __future__ import annotations

import errno
import os
from typing import Any

import libtorrent as lt

from splitnet.transport.listen import torrent_interfaces
from splitnet.transport.ports import free_ports

__all__ = ["open_session"]


def _settings(listen: str, utp: bool, upload_limit: int, download_limit: int) -> lt.settings_pack:
    """Return the session's settings: no discovery, TCP unless ``utp``, tuned for a LAN."""
    return {
        "listen_interfaces": listen,
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": utp, "enable_outgoing_utp": utp,
        "enable_incoming_tcp": True, "enable_outgoing_tcp": True,
        "allow_multiple_connections_per_ip": True,
        "upload_rate_limit": upload_limit, "download_rate_limit": download_limit,
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.storage_notification),
        "send_buffer_watermark": 4 * 1024 * 1024,
        "send_buffer_low_watermark": 1024 * 1024,
        "max_out_request_queue": 1500,
        "request_queue_time": 1,
        "connection_speed": 200,
        "min_reconnect_time": 1,
        "peer_connect_timeout": 3,
        "close_redundant_connections": False,
        "tick_interval": 20,
        "unchoke_slots_limit": -1,
        "torrent_connect_boost": 100,
        # received blocks are written with pwrite, not through a memory map: 64 MiB fetch, min
        # of 3-6 in five interleaved runs, 0.18-0.39 s against 0.30-0.53 s (BENCHMARKS.md)
        "disk_write_mode": int(lt.mmap_write_mode_t.always_pwrite),
    }


def _listen_error(session: Any, where: str) -> OSError:
    """Return why ``session`` listens nowhere, from its listen_failed alert (errno if known)."""
    for alert in session.pop_alerts():
        if isinstance(alert, lt.listen_failed_alert):
            code = alert.error.value() if alert.error.category().name() == "system" else None
            return OSError(code, alert.error.message()) if code else OSError(alert.message())
    return OSError(f"libtorrent listens on none of {where}")


def open_session(host: str, port: int, ssl: bool, *, utp: bool, upload_limit: int,
                 download_limit: int) -> Any:
    """Return a session listening on ``host:port`` (SSL with ``ssl``); OSError if it cannot.

    Its settings: :func:`_settings` (``utp``, rate limits in bytes/s, 0 for none).

    Note: bind failures (transport/listen.py): libtorrent moves on to another port when the one
    asked for is taken, which is a port in use here. ``::`` listens on both families on one port
    (Note: every interface).
    """
    if host == "::" and port == 0:
        port = free_ports(1)[0]
    where = torrent_interfaces(host, port)
    listen = ",".join(f"{w}{'s' if ssl else ''}" for w in where.split(","))
    session = lt.session(_settings(listen, utp, upload_limit, download_limit))
    got = int(session.ssl_listen_port() if ssl else session.listen_port())
    if got == 0:
        raise _listen_error(session, where)
    if port and got != port:
        session.pause()
        raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    return session
