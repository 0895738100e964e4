"""The one table between splitnet errors and the wire: gRPC status codes and refusal kinds.

A handler raises a domain error; the server answers with its status code (:func:`status_of`);
the calling client turns the code back into an error naming the peer (:func:`error_for`). A
refused tensor travels as a refusal kind (:func:`kind_of`) and is rebuilt on the sending side
(:func:`error_of_kind`) inside the :class:`~splitnet.errors.TransferFailed` that reaches the
sender's ``on_failure`` (:func:`refused`, :func:`transfer_failed`). The in-memory transport
goes through the same functions, so a test on it sees what a real peer would see.

====================  ==========  ====================  ===============================
error                 kind        server answers        client reads back
====================  ==========  ====================  ===============================
ProtocolError         protocol    INVALID_ARGUMENT      INVALID_ARGUMENT
PlanMismatch          plan        FAILED_PRECONDITION   FAILED_PRECONDITION
PeerUnavailable       runtime     ABORTED               UNAVAILABLE, DEADLINE_EXCEEDED
other SplitnetError   runtime     ABORTED               any other code (RuntimeFailure)
====================  ==========  ====================  ===============================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from splitnet.errors import (
    PeerUnavailable,
    PlanMismatch,
    ProtocolError,
    RuntimeFailure,
    SplitnetError,
    TransferFailed,
)

__all__ = ["RefusalLog", "error_for", "error_of_kind", "kind_of", "not_a_peer", "refused",
           "reported", "status_of", "task_label", "transfer_failed"]


@dataclass(frozen=True)
class _Row:
    error: type[SplitnetError]
    kind: str | None  # None: sent as the base kind
    answer: grpc.StatusCode | None  # None: the server answers with the base code
    read_back: tuple[grpc.StatusCode, ...]


_ROWS = (
    _Row(ProtocolError, "protocol", grpc.StatusCode.INVALID_ARGUMENT,
         (grpc.StatusCode.INVALID_ARGUMENT,)),
    _Row(PlanMismatch, "plan", grpc.StatusCode.FAILED_PRECONDITION,
         (grpc.StatusCode.FAILED_PRECONDITION,)),
    _Row(PeerUnavailable, None, None,
         (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)),
)
_BASE_KIND = "runtime"
_BASE_ANSWER = grpc.StatusCode.ABORTED


def status_of(exc: SplitnetError) -> grpc.StatusCode:
    """Return the status code a server answers with when its handler raised ``exc``."""
    for row in _ROWS:
        if isinstance(exc, row.error) and row.answer is not None:
            return row.answer
    return _BASE_ANSWER


def error_for(code: grpc.StatusCode, details: str, peer: int, address: str,
              what: str) -> SplitnetError:
    """Return the error a call to ``peer`` ended with (``what``: the call, as a verb phrase).

    Note: a plan mismatch speaks for itself. The peer's details already name both clients and
    every difference, so they are the whole message.
    """
    text = f"client {peer} ({address}) {what}: {details}"
    for row in _ROWS:
        if code in row.read_back:
            return row.error(details or text) if row.error is PlanMismatch else row.error(text)
    return RuntimeFailure(text)


def kind_of(exc: SplitnetError) -> str:
    """Name the kind of the error a tensor was refused with, for the wire."""
    for row in _ROWS:
        if isinstance(exc, row.error) and row.kind is not None:
            return row.kind
    return _BASE_KIND


def error_of_kind(kind: str, text: str) -> SplitnetError:
    """Rebuild the error a peer refused a tensor with, from :func:`kind_of` and its text."""
    for row in _ROWS:
        if row.kind == kind:
            return row.error(text)
    return RuntimeFailure(text)


def task_label(owner: int, stage: int, batch: int) -> str:
    """Name one activation/gradient in an error: ``task 1_3 batch 0``."""
    return f"task {owner}_{stage} batch {batch}"


def refused(peer: int, address: str, kind: str, error: str) -> TransferFailed:
    """Return what the sender reports when ``peer`` refused a tensor (``error`` names the task).

    The peer's error, rebuilt from its kind, is the failure's ``__cause__``.
    """
    text = f"client {peer} ({address}) refused a tensor: {error}"
    failure = TransferFailed(text)
    failure.__cause__ = error_of_kind(kind, text)
    return failure


def transfer_failed(peer: int, address: str, what: str, cause: BaseException) -> TransferFailed:
    """Return the failure of a transfer to or from ``peer`` (``what``: what went wrong)."""
    failure = TransferFailed(f"client {peer} ({address}) {what}: {cause}")
    failure.__cause__ = cause
    return failure


def reported(cause: SplitnetError) -> TransferFailed:
    """Return ``cause`` (whose text already names the peer) as the failure a transport reports."""
    if isinstance(cause, TransferFailed):
        return cause
    failure = TransferFailed(str(cause))
    failure.__cause__ = cause
    return failure


def not_a_peer(peer: int, label: str) -> TransferFailed:
    """Return the failure of sending ``label`` to a client that is not in the peer table."""
    return reported(PeerUnavailable(f"client {peer} is not a peer; {label} was not sent"))


class RefusalLog:
    """Warnings about refused input, at most one line per key (a peer) per ``interval`` seconds.

    Note: bounded refusal log. A peer that sends refused input in a loop must not flood the log
    (nor spend the receiver's time writing it): the first line in each interval is written,
    the others are counted, and the next line written for that key says how many were left out.
    The refusal metrics still count every one.
    """

    MAX_KEYS = 256

    def __init__(self, logger: logging.Logger, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger, self._interval, self._clock = logger, interval, clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def warning(self, key: str, line: str) -> None:
        """Log ``line`` for ``key`` unless a line for ``key`` was written within the interval."""
        now = self._clock()
        if key not in self._last and len(self._last) >= self.MAX_KEYS:
            for old in [k for k, t in self._last.items() if now - t >= self._interval]:
                del self._last[old]  # many keys: forget the quiet ones
                self._left_out.pop(old, None)
            if len(self._last) >= self.MAX_KEYS:
                key = "other peers"
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._left_out[key] = self._left_out.get(key, 0) + 1
            return
        left_out = self._left_out.pop(key, 0)
        self._last[key] = now
        more = f" ({left_out} more like it from {key} not logged)" if left_out else ""
        self._logger.warning("%s%s", line, more)
