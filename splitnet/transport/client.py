"""Calling one peer over gRPC: every call carries the cluster token and a deadline.

gRPC failures are re-raised as the most specific splitnet error, naming the peer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from splitnet.errors import (
    PeerUnavailable,
    PlanMismatch,
    ProtocolError,
    RuntimeFailure,
    raise_error,
)
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc
from splitnet.transport.messages import Blob, TaskMessage
from splitnet.transport.serde import blob_from_frames, blob_to_frames, refusal_error, task_to_frames
from splitnet.transport.server import GRPC_OPTIONS

__all__ = ["PeerClient"]


class _TensorStream:
    """One long-lived ``TensorStream`` call to a peer (Note: tensor stream).

    ``send`` only queues: one writer (the request iterator) puts messages on the stream in
    order. The peer answers only when it refuses a message; that, or the call ending with an
    error, goes to the peer client's ``on_stream_error``.
    """

    def __init__(self, peer: PeerClient) -> None:
        self._peer = peer
        self._queue: asyncio.Queue[TaskMessage | None] = asyncio.Queue()
        self.closed = self._closing = False
        self._call = peer._stub.TensorStream(self._requests(), metadata=peer._metadata,
                                             wait_for_ready=True)
        self._reader = asyncio.ensure_future(self._read_refusals())

    async def _requests(self) -> AsyncIterator[pb.TensorFrame]:
        while (msg := await self._queue.get()) is not None:
            for frame in task_to_frames(msg):
                yield frame

    def send(self, msg: TaskMessage) -> None:
        self._queue.put_nowait(msg)

    async def _read_refusals(self) -> None:
        peer = self._peer
        try:
            async for ack in self._call:
                peer.on_stream_error(refusal_error(ack.kind, f"client {peer.number} "
                                                   f"({peer.address}) refused a tensor: "
                                                   f"{ack.error}"))
        except grpc.aio.AioRpcError as exc:
            if not self._closing:
                peer.on_stream_error(peer._error(exc, "ended the tensor stream"))
        finally:
            self.closed = True

    async def aclose(self) -> None:
        self._closing = True
        self._queue.put_nowait(None)
        self._reader.cancel()
        self._call.cancel()


class PeerClient:
    """The calls one client makes to peer ``number`` at ``address``."""

    def __init__(self, number: int, address: str, token: str, me: int, timeout: float) -> None:
        self.number = number
        self.address = address
        self.me = me
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
        self._stub = pb_grpc.PeerStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._stream: _TensorStream | None = None
        self.on_stream_error: Callable[[Exception], None] = raise_error

    def _error(self, exc: grpc.aio.AioRpcError, what: str) -> Exception:
        text = f"client {self.number} ({self.address}) {what}: {exc.details()}"
        code = exc.code()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return ProtocolError(text)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            return PlanMismatch(exc.details() or text)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return PeerUnavailable(text)
        return RuntimeFailure(text)

    async def _unary(self, method: Any, request: Any, what: str,
                     timeout: float | None = None, ready: bool = True) -> Any:
        try:
            return await method(request, metadata=self._metadata,
                                timeout=timeout or self.timeout, wait_for_ready=ready)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, what) from exc

    async def join(self, fingerprint: str, facts: dict[str, Any], timeout: float,
                   torrent_port: int = 0, tensor_port: int = 0) -> tuple[
                       str, dict[str, Any], int, int]:
        """Exchange plan fingerprints and ports; the peer refuses a different plan."""
        reply = await self._unary(self._stub.Join, pb.JoinRequest(
            client=self.me, fingerprint=fingerprint, facts_json=json.dumps(facts),
            torrent_port=torrent_port, tensor_port=tensor_port), "refused to join", timeout)
        return (reply.fingerprint, json.loads(reply.facts_json or "{}"), int(reply.torrent_port),
                int(reply.tensor_port))

    async def ping(self, timeout: float) -> int:
        """Ask the peer whether it is alive; return its current round."""
        reply = await self._unary(self._stub.Ping, pb.PingRequest(client=self.me),
                                  "did not answer a ping", timeout, ready=False)
        return int(reply.round)

    async def send_tensor(self, msg: TaskMessage, timeout: float | None = None) -> None:
        """Send one activation or gradient."""
        try:
            await self._stub.SendTensor(task_to_frames(msg), metadata=self._metadata,
                                        timeout=timeout or self.timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, f"did not take task {msg.owner}_{msg.stage} "
                                   f"batch {msg.batch}") from exc

    def stream_tensor(self, msg: TaskMessage) -> None:
        """Queue one activation or gradient on the peer's long-lived tensor stream."""
        if self._stream is None or self._stream.closed:
            self._stream = _TensorStream(self)
        self._stream.send(msg)

    async def round_done(self, round_: int, stats: dict[str, Any]) -> None:
        """Tell the aggregator this client's owners finished ``round_``."""
        await self._unary(self._stub.RoundDone, pb.RoundDoneRequest(
            client=self.me, round=round_, stats_json=json.dumps(stats)), "did not take round end")

    async def get_states(self, round_: int) -> Blob:
        """Fetch the peer's replica states at the end of ``round_``."""
        try:
            call = self._stub.GetStates(pb.StatesRequest(round=round_), metadata=self._metadata,
                                        timeout=self.timeout, wait_for_ready=True)
            return await blob_from_frames(call)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "did not send its replica states") from exc

    async def put_model(self, blob: Blob, timeout: float | None = None) -> None:
        """Send averaged partitions to the peer."""
        try:
            await self._stub.PutModel(blob_to_frames(blob), metadata=self._metadata,
                                      timeout=timeout or self.timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "did not take the averaged model") from exc

    async def finish(self, reason: str) -> None:
        """Tell the peer training is over."""
        await self._unary(self._stub.Finish, pb.NoticeRequest(client=self.me, reason=reason),
                          "did not take the finish notice", 10.0)

    async def abort(self, reason: str) -> None:
        """Tell the peer this client is stopping because of an error."""
        await self._unary(self._stub.Abort, pb.NoticeRequest(client=self.me, reason=reason),
                          "did not take the abort notice", 5.0)

    async def aclose(self) -> None:
        """Close the tensor stream and the channel."""
        if self._stream is not None:
            await self._stream.aclose()
        await self._channel.close()
