"""The in-memory network: several clients in one process, no sockets (for unit tests).

``hub = MemoryHub()``; ``hub.network(k)`` is client k's :class:`MemoryNetwork`. Control calls go
straight to the peer's handler, but carry what the wire would: facts and reports as JSON text,
blobs as fresh bytes and JSON metadata; a handler's error reaches the caller as the gRPC path
would surface it (the same table, ``transport.status``), naming the peer. A peer that is not
serving (never started, or closed) raises :class:`~splitnet.errors.PeerUnavailable`. Tensors
are encoded and decoded as on the wire and handed to the peer's ``handler.tensor`` on the event
loop, in order per pair of clients; a refusal reaches the sender's ``on_failure`` as
:class:`~splitnet.errors.TransferFailed` naming the peer and the task. Bulk is inline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc

from splitnet.errors import PeerUnavailable, ProtocolError, SplitnetError, TransferFailed
from splitnet.transport.base import (
    AsyncClosing,
    BulkTransport,
    Fail,
    Joined,
    PeerControl,
    PeerHandler,
    Reject,
    TensorTransport,
    report_failure,
)
from splitnet.transport.bulk import InlineBulk
from splitnet.transport.codec import decode_tensor, encode_tensor
from splitnet.transport.messages import Blob, TaskMessage
from splitnet.transport.status import (
    error_for,
    kind_of,
    refused,
    reported,
    status_of,
    task_label,
    transfer_failed,
)

__all__ = ["MemoryHub", "MemoryNetwork", "MemoryPeer", "MemoryTensors"]

T = TypeVar("T")


class MemoryHub:
    """The clients of one in-process cluster."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._networks: dict[int, MemoryNetwork] = {}

    def network(self, me: int) -> MemoryNetwork:
        """Return client ``me``'s network (one per client)."""
        if me in self._networks:
            raise ValueError(f"client {me} already has a network in this hub")
        network = self._networks[me] = MemoryNetwork(self, me)
        return network

    def handler(self, peer: int, address: str, what: str) -> PeerHandler:
        """Return ``peer``'s handler, or raise PeerUnavailable when it is not serving."""
        network = self._networks.get(peer)
        if network is None or network.handler is None:
            raise PeerUnavailable(f"client {peer} ({address}) {what}: not serving")
        return network.handler

    def numbers(self) -> list[int]:
        """Return every client's number, ascending."""
        return sorted(self._networks)


class MemoryPeer(AsyncClosing):
    """The control calls to one peer in the hub (implements ``PeerControl``)."""

    def __init__(self, hub: MemoryHub, me: int, number: int) -> None:
        self.number = number
        self.address = f"memory:{number}"
        self.me = me
        self._hub = hub

    async def _call(self, what: str, call: Callable[[PeerHandler], Awaitable[T]],
                    timeout: float | None = None) -> T:
        handler = self._hub.handler(self.number, self.address, what)
        try:
            return await asyncio.wait_for(call(handler), timeout or self._hub.timeout)
        except SplitnetError as exc:
            raise error_for(status_of(exc), str(exc), self.number, self.address, what) from exc
        except asyncio.TimeoutError as exc:
            raise error_for(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", self.number,
                            self.address, what) from exc
        except Exception as exc:  # a bug in the handler: gRPC answers UNKNOWN
            raise error_for(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}",
                            self.number, self.address, what) from exc

    async def join(self, fingerprint: str, facts: dict[str, Any], timeout: float,
                   torrent_port: int = 0, tensor_port: int = 0, run_id: str = "") -> Joined:
        """Exchange plan fingerprints, ports and the run id."""
        facts_json = json.dumps(facts)
        reply = await self._call("refused to join", lambda h: h.join(
            self.me, fingerprint, json.loads(facts_json), torrent_port, tensor_port, run_id),
            timeout)
        theirs, own, port, their_tensor_port, their_run = reply
        return (theirs, json.loads(json.dumps(own)), int(port), int(their_tensor_port),
                str(their_run))

    async def ping(self, timeout: float) -> int:
        """Return the peer's current round."""
        return int(await self._call("did not answer a ping", lambda h: h.ping(self.me), timeout))

    async def round_done(self, round_: int, report_json: str) -> None:
        """Tell the peer this client finished ``round_``."""
        await self._call("did not take round end",
                         lambda h: h.round_done(self.me, round_, str(report_json)))

    async def get_states(self, round_: int, weights: Mapping[int, int] | None = None,
                         timeout: float | None = None) -> Blob:
        """Fetch the peer's replica states."""
        return _copy(await self._call("did not send its replica states",
                                      lambda h: h.get_states(self.me, round_, weights), timeout))

    async def put_model(self, blob: Blob, timeout: float | None = None) -> None:
        """Send averaged partitions to the peer."""
        sent = _copy(blob)
        await self._call("did not take the averaged model", lambda h: h.put_model(sent), timeout)

    async def finish(self, reason: str) -> None:
        """Tell the peer training is over."""
        await self._call("did not take the finish notice", lambda h: h.finish(self.me, reason),
                         10.0)

    async def abort(self, reason: str) -> None:
        """Tell the peer this client is stopping because of an error."""
        await self._call("did not take the abort notice", lambda h: h.abort(self.me, reason),
                         5.0)

    async def aclose(self) -> None:
        """Nothing to close."""


def _copy(blob: Blob) -> Blob:
    """Return ``blob`` as the receiver would rebuild it from the wire."""
    return Blob(blob.kind, blob.round, blob.sender, bytes(blob.data),
                json.loads(json.dumps(blob.meta)))


class MemoryTensors(AsyncClosing):
    """Tensors to peers in the hub: one ordered queue and delivery task per peer."""

    def __init__(self, hub: MemoryHub, me: int) -> None:
        self.me = me
        self.on_failure: Fail | None = None
        self._hub = hub
        self._queues: dict[int, asyncio.Queue[TaskMessage]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record nothing: peers are found in the hub."""

    def send(self, peer: int, msg: TaskMessage) -> None:
        """Queue ``msg`` for ``peer``; failures go to ``on_failure``."""
        if peer not in self._workers:
            self._queues[peer] = asyncio.Queue()
            self._workers[peer] = asyncio.ensure_future(self._deliver(peer))
        self._queues[peer].put_nowait(msg)

    async def _deliver(self, peer: int) -> None:
        queue, address = self._queues[peer], f"memory:{peer}"
        while True:
            msg = await queue.get()
            label = task_label(msg.owner, msg.stage, msg.batch)
            try:
                received = _wire_copy(msg)
                handler = self._hub.handler(peer, address, f"did not take {label}")
            except PeerUnavailable as exc:
                self._fail(reported(exc))
                continue
            except SplitnetError as exc:
                self._fail(transfer_failed(peer, address, f"was not sent {label}", exc))
                continue
            try:
                await handler.tensor(received)
            except SplitnetError as exc:
                self._fail(refused(peer, address, kind_of(exc), f"{label}: {exc}"))
            except Exception as exc:  # a bug in the handler ends the real connection too
                self._fail(transfer_failed(peer, address, f"ended the tensor stream ({label})",
                                           exc))

    def _fail(self, failure: TransferFailed) -> None:
        report_failure(self.on_failure, failure)

    async def aclose(self) -> None:
        """Stop delivering; what is still queued is dropped. Idempotent."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def _wire_copy(msg: TaskMessage) -> TaskMessage:
    """Return ``msg`` as the receiver would decode it (ProtocolError for what may not be sent)."""
    assert msg.tensor is not None, "the in-memory transport carries tensors, not references"
    meta, data = encode_tensor(msg.tensor)
    return TaskMessage(msg.owner, msg.stage, msg.batch, msg.round, msg.sender,
                       decode_tensor(meta, data), None, meta)


class _Peers(Mapping[int, MemoryPeer]):
    """Every other client of the hub, as it is when asked."""

    def __init__(self, hub: MemoryHub, me: int) -> None:
        self._hub, self._me = hub, me
        self._peers: dict[int, MemoryPeer] = {}

    def __getitem__(self, number: int) -> MemoryPeer:
        if number == self._me or number not in self._hub.numbers():
            raise KeyError(number)
        if number not in self._peers:
            self._peers[number] = MemoryPeer(self._hub, self._me, number)
        return self._peers[number]

    def __iter__(self) -> Iterator[int]:
        return (k for k in self._hub.numbers() if k != self._me)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class MemoryNetwork(AsyncClosing):
    """Client ``me``'s network in a :class:`MemoryHub` (implements ``Network``)."""

    def __init__(self, hub: MemoryHub, me: int) -> None:
        self.me = me
        self.peers: Mapping[int, PeerControl] = _Peers(hub, me)
        self._tensors = MemoryTensors(hub, me)
        self.tensors: TensorTransport = self._tensors
        self.bulk: BulkTransport = InlineBulk(me)
        self.handler: PeerHandler | None = None
        self._closed = False

    @property
    def tensor_port(self) -> int:
        """Return 0: there is no listener."""
        return 0

    def learn(self, peer: int, torrent_port: int, tensor_port: int) -> None:
        """Record nothing: peers are found in the hub."""

    async def complete(self, msg: TaskMessage) -> None:
        """Leave ``msg`` as it is: tensors carry their bytes here (a reference is refused)."""
        if msg.torrent is not None:
            raise ProtocolError(f"client {self.me} takes no activations over BitTorrent "
                                f"from client {msg.sender}")

    async def serve(self, handler: PeerHandler, on_failure: Fail,
                    on_reject: Reject | None = None) -> None:
        """Start answering peers' calls with ``handler`` (nothing is ever rejected here)."""
        if self._closed:
            raise PeerUnavailable(f"client {self.me}'s network is closed")
        self._tensors.on_failure = on_failure
        self.handler = handler

    async def aclose(self) -> None:
        """Stop serving and delivering; idempotent."""
        self._closed = True
        self.handler = None
        await self.tensors.aclose()
        await self.bulk.aclose()
