"""Which pieces a torrent is cut into, and in which order a receiver of a broadcast asks for them.

Note: shard first. When one publisher sends a payload to N receivers over capped uplinks, the
round takes (bytes the publisher uploads) / B: the receivers' uplinks add capacity, but every
piece must leave the publisher at least once. With libtorrent's own picking (rarest first, all
pieces equally rare at the start), the receivers ask the publisher for the same pieces: it
uploaded 1.7-2.0 x S (measured: 64 MiB, 8 MiB/s caps, 8 receivers: 1.71 S, 2.5-3.6 x S/B).
Super-seeding would fix that but libtorrent reveals its first piece only after a 10 s timer
(measured: the first HAVE 10.0 s after the handshake). So each receiver i of n starts with
only its own shard (pieces p with p % n == i) wanted; a piece of another shard is opened as
soon as some other peer than the publisher has it (availability ≥ 2: it can come from a
receiver) or once the receiver's own shard is complete (then everything is opened). The
publisher then uploads ~1.15 x S and the receivers trade the rest among themselves
(measured: 1.21 x S/B at 8 receivers, BENCHMARKS.md).
"""

from __future__ import annotations

import time
from typing import Any

import libtorrent as lt

__all__ = ["ShardFirst", "piece_size_for"]

_MIN_PIECE = 64 * 1024
_MAX_PIECE = 4 * 1024 * 1024


def piece_size_for(size: int) -> int:
    """Return a power-of-two piece size giving ~256 pieces, within 64 KiB..4 MiB."""
    target = max(size // 256, 1)
    piece = _MIN_PIECE
    while piece < target and piece < _MAX_PIECE:
        piece *= 2
    return piece


class ShardFirst:
    """Piece priorities of receiver ``index`` of ``count`` (see Note: shard first)."""

    def __init__(self, handle: Any, num_pieces: int, index: int, count: int,
                 interval: float = 0.05) -> None:
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count}: expected 0 <= index < count")
        self.handle = handle
        self.interval = interval  # seconds between looks at the swarm (each lists every piece)
        self._next = 0.0
        self.mine = [p for p in range(num_pieces) if p % count == index]
        self.closed = {p for p in range(num_pieces) if p % count != index}
        handle.prioritize_pieces([7 if p % count == index else 0 for p in range(num_pieces)])

    def update(self) -> None:
        """Open the pieces another receiver already has; all of them once our shard is in."""
        if not self.closed or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.interval
        have = self.handle.status(lt.status_flags_t.query_pieces).pieces
        if all(have[p] for p in self.mine):
            opened = set(self.closed)
        else:
            available = self.handle.piece_availability()
            opened = {p for p in self.closed if available[p] >= 2}
        for piece in opened:
            self.handle.piece_priority(piece, 1)
        self.closed -= opened
