"""Training progress as log lines: round, epoch, batches, mean loss.

Lines carry the marker ``PROGRESS`` and come at most every ``interval`` seconds (and at the end of
each round), so logs and containers get plain periodic lines; ``splitnet local`` redraws them in
place when its output is a terminal (see :func:`is_progress`).
"""

from __future__ import annotations

import logging
import time

__all__ = ["MARKER", "Progress", "is_progress"]

MARKER = "PROGRESS"
log = logging.getLogger("splitnet.progress")


def is_progress(line: str) -> bool:
    """Return True for a progress line (``splitnet local`` redraws those in place)."""
    return MARKER in line


class Progress:
    """Rate-limited progress reports for one owner (or the baseline)."""

    def __init__(self, who: str, rounds: int, epochs: int, interval: float = 2.0) -> None:
        self.who = who
        self.rounds = rounds
        self.epochs = epochs
        self.interval = interval
        self._last = 0.0

    def tick(self, round_: int, epoch: int, batches: int, loss_sum: float, final: bool) -> None:
        """Report if ``interval`` passed since the last report, or at the end of a round."""
        now = time.monotonic()
        if not final and now - self._last < self.interval:
            return
        self._last = now
        loss = loss_sum / max(batches, 1)
        log.info("%s %s: round %d/%d, epoch %d/%d, %d batches, mean loss %.4f%s", MARKER,
                 self.who, round_ + 1, self.rounds, epoch + 1, self.epochs, batches, loss,
                 " (round done)" if final else "")
