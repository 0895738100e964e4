"""What the node's parts share: the one failure path and this client's byte counters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

__all__ = ["Counters", "Failure"]


class Failure:
    """The first error that stops this client; every part reports here.

    Note: one failure path (node). Transports' ``on_failure``, the interpreter's ``run()``,
    heartbeats, a peer's abort and the aggregator's background work all call :meth:`fail`; the
    node waits on :meth:`wait` next to its main task, tells its peers and raises the error.
    Later errors are consequences of the first and are dropped.
    """

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._event = asyncio.Event()

    def fail(self, error: BaseException) -> None:
        """Record ``error`` unless an earlier one stopped the client already."""
        if self.error is None:
            self.error = error
            self._event.set()

    async def wait(self) -> BaseException:
        """Return the error once there is one."""
        await self._event.wait()
        assert self.error is not None
        return self.error

    def watch(self, task: asyncio.Future[Any]) -> None:
        """Report ``task``'s exception, if it ends with one (cancellation is no failure)."""
        task.add_done_callback(self._check)

    def _check(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            self.fail(error)


@dataclass
class Counters:
    """Payload bytes this client moved, and the peer messages it refused."""

    sent: int = 0
    received: int = 0
    rejected: int = 0
