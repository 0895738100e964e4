"""Tensors over one long-lived gRPC ``TensorStream`` call per peer (``ACTIVATION_TRANSPORT=grpc``).

Note: tensor stream. Messages are not acknowledged one by one (an answer per message would
double the cost of a hop): ``send`` only queues, and one writer (the request iterator) puts the
messages on the stream in order. The peer answers only when it refuses a message; that, or the
call ending with an error, reaches ``on_failure`` as a
:class:`~splitnet.errors.TransferFailed` naming the peer (Note: one failure path). The
receiving side is the gRPC server's ``TensorStream`` method.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import grpc

from splitnet.errors import SplitnetError, TransferFailed
from splitnet.transport.base import AsyncClosing, Fail, report_failure
from splitnet.transport.client import PeerClient
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.messages import TaskMessage
from splitnet.transport.serde import task_to_frames
from splitnet.transport.status import not_a_peer, refused, reported, task_label, transfer_failed

__all__ = ["StreamTransport"]


class _Stream:
    """One ``TensorStream`` call to a peer."""

    def __init__(self, peer: PeerClient, fail: Fail) -> None:
        self._peer, self._fail = peer, fail
        self._queue: asyncio.Queue[list[pb.TensorFrame] | None] = asyncio.Queue()
        self.closed = self._closing = False
        self._call = peer.tensor_stream(self._requests())
        self._reader = asyncio.ensure_future(self._read_refusals())

    async def _requests(self) -> AsyncIterator[pb.TensorFrame]:
        while (frames := await self._queue.get()) is not None:
            for frame in frames:
                yield frame

    def send(self, frames: list[pb.TensorFrame]) -> None:
        self._queue.put_nowait(frames)

    async def _read_refusals(self) -> None:
        peer = self._peer
        try:
            async for ack in self._call:
                self._fail(refused(peer.number, peer.address, ack.kind, ack.error))
        except grpc.aio.AioRpcError as exc:
            if not self._closing:
                self._fail(reported(peer.error(exc, "ended the tensor stream")))
        finally:
            self.closed = True

    async def aclose(self) -> None:
        self._closing = True
        self._queue.put_nowait(None)
        self._reader.cancel()
        self._call.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class StreamTransport(AsyncClosing):
    """Tensors to peers over their gRPC servers (implements ``TensorTransport``)."""

    def __init__(self, peers: Mapping[int, PeerClient]) -> None:
        self._peers = peers
        self._on_failure: Fail | None = None
        self._streams: dict[int, _Stream] = {}

    def start(self, on_failure: Fail) -> None:
        """Report failures of later sends to ``on_failure``."""
        self._on_failure = on_failure

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record nothing: tensors go to the peer's gRPC address."""

    def send(self, peer: int, msg: TaskMessage) -> None:
        """Queue ``msg`` on ``peer``'s stream (opened on first use); never raises."""
        label = task_label(msg.owner, msg.stage, msg.batch)
        client = self._peers.get(peer)
        if client is None:
            self._fail(not_a_peer(peer, label))
            return
        try:
            frames = list(task_to_frames(msg))
        except SplitnetError as exc:  # a dtype that may not be sent
            self._fail(transfer_failed(peer, client.address, f"was not sent {label}", exc))
            return
        stream = self._streams.get(peer)
        if stream is None or stream.closed:
            try:
                stream = self._streams[peer] = _Stream(client, self._fail)
            except SplitnetError as exc:  # the connection to the peer is closed
                self._fail(transfer_failed(peer, client.address, f"was not sent {label}", exc))
                return
        stream.send(frames)

    def _fail(self, failure: TransferFailed) -> None:
        report_failure(self._on_failure, failure)

    async def aclose(self) -> None:
        """Close every stream; idempotent."""
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            await stream.aclose()
