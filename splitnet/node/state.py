"""What the node's parts share: the one failure path, background tasks, byte counters."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Background", "Counters", "Failure"]


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


T = TypeVar("T")


class Background:
    """The tasks that run beside the node's main task: kept, watched, cancelled at the end."""

    def __init__(self, failure: Failure) -> None:
        self._failure = failure
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` as a task; an exception it ends with stops the client."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._failure.watch(task)
        return task

    def cancel(self) -> None:
        """Cancel every task still running."""
        for task in list(self._tasks):
            task.cancel()


@dataclass
class Counters:
    """Payload bytes this client moved, and the peer messages it refused."""

    sent: int = 0
    received: int = 0
    rejected: int = 0
    bulk_sent: int = 0  # of which states, models and chunks (round-end exchange)
    bulk_received: int = 0
