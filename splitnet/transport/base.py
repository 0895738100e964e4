"""The transport interfaces: what the node and the runtime may ask of the network.

One client reaches its peers through a :class:`Network`, built from three parts:

* control calls (:class:`PeerControl`, one per peer; served by a :class:`PeerHandler`): join,
  liveness, round ends, replica states, models, finish and abort;
* a :class:`TensorTransport` for activations and gradients (the direct TCP channel, a gRPC
  stream, BitTorrent; an in-memory one for tests);
* a :class:`BulkTransport` for large objects (inline over the control channel, or BitTorrent).

Note: one failure path. A transport never raises into the code that hands it a message:
``TensorTransport.send`` only queues. Whatever goes wrong later (a peer refuses a message, a
connection ends, a fetch times out) reaches the owner of the transport once, through the
``on_failure`` callback it was built with, as a :class:`~splitnet.errors.TransferFailed` naming
the peer (the original error is its ``__cause__``). Control calls are plain awaitables: they
raise the most specific :class:`~splitnet.errors.SplitnetError` naming the peer.

Every part is an async context manager; ``aclose`` is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeVar

from splitnet.errors import TransferFailed
from splitnet.transport.messages import Blob, TaskMessage

__all__ = ["AsyncClosing", "BulkTransport", "Fail", "Joined", "Network", "PeerControl",
           "PeerHandler", "Receive", "Reject", "TensorTransport", "report_failure"]

Receive = Callable[[TaskMessage], Awaitable[None]]
"""Takes one incoming activation/gradient; raises ProtocolError to refuse it (sender is told)."""

Fail = Callable[[TransferFailed], None]
"""Where a transport reports a failure that happened after ``send`` returned (Note: one failure
path)."""

Joined = tuple[str, dict[str, Any], int, int, str]
"""A join's answer: plan fingerprint, plan facts, torrent port, tensor port, run id ("": none)."""

Reject = Callable[[str, str], None]
"""Told ``(what, kind)`` of every input a listener refuses before the node sees it: ``what`` names
the call or listener, ``kind`` is ``auth`` (missing or wrong cluster token) or ``limit`` (a
listener limit or the framing broken: oversize, read deadline, malformed frame, too many
connections)."""


log = logging.getLogger("splitnet.transport")
_C = TypeVar("_C", bound="AsyncClosing")


def report_failure(on_failure: Fail | None, failure: TransferFailed) -> None:
    """Hand ``failure`` to ``on_failure`` (Note: one failure path); log it if nobody listens."""
    if on_failure is None:
        log.warning("%s", failure)
    else:
        on_failure(failure)


class AsyncClosing:
    """Mixin for a transport's parts: ``async with part:`` closes it with :meth:`aclose`."""

    async def aclose(self) -> None:
        """Release what the part holds (nothing unless a subclass says otherwise); idempotent."""

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class _AsyncClosing(Protocol):
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...


class TensorTransport(_AsyncClosing, Protocol):
    """Carries activations and gradients to the client that runs the next task."""

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record where ``peer`` receives tensors (announced at join; 0: nothing to learn)."""

    def send(self, peer: int, msg: TaskMessage) -> None:
        """Queue ``msg`` for ``peer``, in order; never raises (failures go to ``on_failure``)."""


class BulkTransport(_AsyncClosing, Protocol):
    """Moves large objects (replica states, models): inline, or announced and fetched."""

    @property
    def port(self) -> int:
        """Return where this client serves bulk data to peers (0: inline only)."""

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record where ``peer`` serves bulk data."""

    def out(self, kind: str, round_: int, data: bytes, meta: Mapping[str, Any] | None = None,
            sources: Iterable[int] = ()) -> Blob:
        """Return a blob that carries ``data`` inline or references it (``sources`` hold it)."""

    async def into(self, blob: Blob) -> bytes:
        """Return a received blob's payload, fetching it when the blob is a reference."""

    def model_applied(self, round_: int) -> None:
        """Drop what nobody needs once round ``round_``'s model is everywhere."""

    def disk_bytes(self) -> int:
        """Return the bytes this client's published objects take on disk."""

    def stats(self) -> dict[str, int]:
        """Return the BitTorrent counters (empty when nothing goes over BitTorrent).

        Keys: peers, upload_rate, download_rate (bytes/s), uploaded (bytes), over every torrent.
        """


class PeerControl(_AsyncClosing, Protocol):
    """The control calls one client makes to one peer (every call has a deadline)."""

    number: int
    address: str

    async def join(self, fingerprint: str, facts: dict[str, Any], timeout: float,
                   torrent_port: int = 0, tensor_port: int = 0, run_id: str = "") -> Joined:
        ...

    async def ping(self, timeout: float) -> int: ...

    async def round_done(self, round_: int, report_json: str) -> None: ...

    async def get_states(self, round_: int, weights: Mapping[int, int] | None = None,
                         timeout: float | None = None) -> Blob:
        ...

    async def put_model(self, blob: Blob, timeout: float | None = None) -> None: ...

    async def finish(self, reason: str) -> None: ...

    async def abort(self, reason: str) -> None: ...


class PeerHandler(Protocol):
    """What a client does when a peer calls it; raises domain errors (see ``transport.status``)."""

    async def join(self, client: int, fingerprint: str, facts: dict[str, Any],
                   torrent_port: int, tensor_port: int, run_id: str) -> Joined:
        ...

    async def ping(self, client: int) -> int: ...

    async def tensor(self, msg: TaskMessage) -> None: ...

    async def round_done(self, client: int, round_: int, report_json: str) -> None: ...

    async def get_states(self, client: int, round_: int,
                         weights: Mapping[int, int] | None = None) -> Blob: ...

    async def put_model(self, blob: Blob) -> None: ...

    async def finish(self, client: int, reason: str) -> None: ...

    async def abort(self, client: int, reason: str) -> None: ...


class Network(_AsyncClosing, Protocol):
    """Everything one client needs to reach its peers, started with :meth:`serve`."""

    me: int
    peers: Mapping[int, PeerControl]
    tensors: TensorTransport
    bulk: BulkTransport

    async def serve(self, handler: PeerHandler, on_failure: Fail,
                    on_reject: Reject | None = None) -> None:
        """Start answering peers' calls with ``handler`` (and receiving their tensors).

        ``on_failure`` receives every failure of the tensor and bulk transports that happens
        after the call that started it returned (Note: one failure path); ``on_reject`` is told
        of every input the listeners refuse themselves (see :data:`Reject`).
        """

    @property
    def tensor_port(self) -> int:
        """Return where this client receives tensors (announced at join; 0 if not needed)."""

    def learn(self, peer: int, torrent_port: int, tensor_port: int) -> None:
        """Record the ports ``peer`` announced at join."""

    async def complete(self, msg: TaskMessage) -> None:
        """Make a received tensor message whole before it is accepted.

        A message that came as a reference (``ACTIVATION_TRANSPORT=torrent``) gets its bytes
        fetched; one that carries them is left as it is. Raises ProtocolError or TransferFailed
        to refuse the message (the receiver counts it; the sender is told).
        """
