"""Calling one peer over gRPC: every call carries the cluster token and a deadline.

gRPC failures are re-raised as the most specific splitnet error, naming the peer.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc

from splitnet.errors import PeerUnavailable, PlanMismatch, ProtocolError, RuntimeFailure
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc
from splitnet.transport.messages import Blob, TaskMessage
from splitnet.transport.serde import blob_from_frames, blob_to_frames, task_to_frames
from splitnet.transport.server import GRPC_OPTIONS

__all__ = ["PeerClient"]


class _TensorStream:
    """One long-lived ``TensorStream`` call to a peer (Note: tensor stream).

    Messages queue for one writer (the request iterator); acks come back in order and settle
    each sender's future. When the call ends, every message still waiting for its ack fails.
    """

    def __init__(self, peer: PeerClient) -> None:
        self._peer = peer
        self._queue: asyncio.Queue[TaskMessage | None] = asyncio.Queue()
        self._waiting: deque[tuple[asyncio.Future[None], TaskMessage]] = deque()
        self.closed = self._closing = False
        self._call = peer._stub.TensorStream(self._requests(), metadata=peer._metadata,
                                             wait_for_ready=True)
        self._reader = asyncio.ensure_future(self._read_acks())

    async def _requests(self) -> AsyncIterator[pb.TensorFrame]:
        while (msg := await self._queue.get()) is not None:
            for frame in task_to_frames(msg):
                yield frame

    def send(self, msg: TaskMessage) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((future, msg))
        self._queue.put_nowait(msg)
        return future

    async def _read_acks(self) -> None:
        error: Exception | None = None
        try:
            async for ack in self._call:
                future, msg = self._waiting.popleft()
                if future.done():
                    continue
                if ack.error:
                    kind = {"protocol": ProtocolError, "plan": PlanMismatch}.get(
                        ack.kind, RuntimeFailure)
                    future.set_exception(kind(f"client {self._peer.number} "
                                              f"({self._peer.address}) did not take task "
                                              f"{msg.owner}_{msg.stage} batch {msg.batch}: "
                                              f"{ack.error}"))
                else:
                    future.set_result(None)
        except grpc.aio.AioRpcError as exc:
            error = self._peer._error(exc, "ended the tensor stream")
        finally:
            self.closed = True
            for future, msg in self._waiting:
                if self._closing and not future.done():
                    future.cancel()  # closing: the senders are being cancelled too
                elif not future.done():
                    future.set_exception(error or PeerUnavailable(
                        f"client {self._peer.number} ({self._peer.address}) ended the tensor "
                        f"stream before taking task {msg.owner}_{msg.stage} batch {msg.batch}"))
            self._waiting.clear()

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
                   torrent_port: int = 0) -> tuple[str, dict[str, Any], int]:
        """Exchange plan fingerprints and torrent ports; the peer refuses a different plan."""
        reply = await self._unary(self._stub.Join, pb.JoinRequest(
            client=self.me, fingerprint=fingerprint, facts_json=json.dumps(facts),
            torrent_port=torrent_port), "refused to join", timeout)
        return reply.fingerprint, json.loads(reply.facts_json or "{}"), int(reply.torrent_port)

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

    async def stream_tensor(self, msg: TaskMessage) -> None:
        """Send one activation or gradient over the peer's long-lived tensor stream."""
        if self._stream is None or self._stream.closed:
            self._stream = _TensorStream(self)
        await self._stream.send(msg)

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
