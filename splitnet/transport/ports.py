"""Free TCP ports on loopback, for clusters started on one machine (local runs, tests, benches)."""

from __future__ import annotations

import random
import socket

__all__ = ["free_ports"]


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free TCP ports on loopback.

    Note: below the ephemeral range. Ports come from 20000-32767, which the kernel never hands
    out for port-0 binds or outgoing connections (Linux: 32768-60999), so another socket cannot
    take one between this check and the client binding it.
    """
    sockets: list[socket.socket] = []
    rng = random.Random()
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", rng.randrange(20000, 32768)))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()
