"""Calling one peer over gRPC: every call carries the cluster token and a deadline.

:class:`PeerClient` implements :class:`~splitnet.transport.base.PeerControl`. gRPC failures are
re-raised as the most specific splitnet error, naming the peer (the table in
``transport.status``). The channel opens on the first call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc

from splitnet.errors import PeerUnavailable, SplitnetError
from splitnet.transport.base import AsyncClosing, Joined
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc
from splitnet.transport.messages import Blob, TaskMessage
from splitnet.transport.serde import (
    MAX_BLOB_BYTES,
    blob_from_frames,
    blob_to_frames,
    task_to_frames,
)
from splitnet.transport.server import GRPC_OPTIONS
from splitnet.transport.status import error_for, task_label
from splitnet.transport.tls import Identity, client_name

__all__ = ["Pace", "PeerClient"]

Pace = Callable[[int], Awaitable[None]]
"""Awaited with each frame's size before the frame goes out (an uplink limit, for benchmarks)."""


async def _paced(frames: Iterable[pb.BlobFrame], pace: Pace) -> AsyncIterator[pb.BlobFrame]:
    for frame in frames:
        await pace(len(frame.data))
        yield frame


class PeerClient(AsyncClosing):
    """The calls one client (``me``) makes to peer ``number`` at ``address``."""

    def __init__(self, number: int, address: str, token: str, me: int, timeout: float,
                 max_blob_bytes: int = MAX_BLOB_BYTES, identity: Identity | None = None) -> None:
        self.number = number
        self.max_blob_bytes = max_blob_bytes  # the largest states object read from the peer
        self.address = address
        self.me = me
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub_: pb_grpc.PeerStub | None = None
        self._closed = False
        self._identity = identity  # mutual TLS: no token travels, the peer must be `number`
        self._metadata = (("authorization", f"Bearer {token}"),) if identity is None else ()

    @property
    def _stub(self) -> pb_grpc.PeerStub:
        if self._closed:  # a closed client opens no new channel that nobody would close
            raise PeerUnavailable(f"client {self.number} ({self.address}): the connection to "
                                  "it is closed")
        if self._stub_ is None:
            self._channel = self._open()
            self._stub_ = pb_grpc.PeerStub(self._channel)
        return self._stub_

    def _open(self) -> grpc.aio.Channel:
        if self._identity is None:
            return grpc.aio.insecure_channel(self.address, options=GRPC_OPTIONS)
        i = self._identity
        credentials = grpc.ssl_channel_credentials(root_certificates=i.ca_pem,
                                                   private_key=i.key_pem,
                                                   certificate_chain=i.cert_pem)
        return grpc.aio.secure_channel(self.address, credentials, options=[
            *GRPC_OPTIONS, ("grpc.ssl_target_name_override", client_name(self.number))])

    def error(self, exc: grpc.aio.AioRpcError, what: str) -> SplitnetError:
        """Return the splitnet error for a failed call (``what``: the call, as a verb phrase)."""
        return error_for(exc.code(), exc.details() or "", self.number, self.address, what)

    async def _unary(self, method: Any, request: Any, what: str,
                     timeout: float | None = None, ready: bool = True) -> Any:
        try:
            return await method(request, metadata=self._metadata,
                                timeout=timeout or self.timeout, wait_for_ready=ready)
        except grpc.aio.AioRpcError as exc:
            raise self.error(exc, what) from exc

    async def join(self, fingerprint: str, facts: dict[str, Any], timeout: float,
                   torrent_port: int = 0, tensor_port: int = 0, run_id: str = "") -> Joined:
        """Exchange plan fingerprints, ports and the run id; the peer refuses a different plan."""
        reply = await self._unary(self._stub.Join, pb.JoinRequest(
            client=self.me, fingerprint=fingerprint, facts_json=json.dumps(facts),
            torrent_port=torrent_port, tensor_port=tensor_port, run_id=run_id),
            "refused to join", timeout)
        return (reply.fingerprint, json.loads(reply.facts_json or "{}"), int(reply.torrent_port),
                int(reply.tensor_port), reply.run_id)

    async def ping(self, timeout: float) -> int:
        """Ask the peer whether it is alive; return its current round."""
        reply = await self._unary(self._stub.Ping, pb.PingRequest(client=self.me),
                                  "did not answer a ping", timeout, ready=False)
        return int(reply.round)

    async def send_tensor(self, msg: TaskMessage, timeout: float | None = None) -> None:
        """Send one activation/gradient (or its torrent reference) and wait for the peer."""
        try:
            await self._stub.SendTensor(task_to_frames(msg), metadata=self._metadata,
                                        timeout=timeout or self.timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            what = f"did not take {task_label(msg.owner, msg.stage, msg.batch)}"
            raise self.error(exc, what) from exc

    def tensor_stream(self, requests: AsyncIterator[pb.TensorFrame]) -> Any:
        """Open the peer's long-lived tensor stream (Note: tensor stream); return the call."""
        return self._stub.TensorStream(requests, metadata=self._metadata, wait_for_ready=True)

    async def round_done(self, round_: int, report_json: str) -> None:
        """Tell the aggregator this client's owners finished ``round_`` (a RoundReport)."""
        await self._unary(self._stub.RoundDone, pb.RoundDoneRequest(
            client=self.me, round=round_, stats_json=report_json), "did not take round end")

    async def get_states(self, round_: int, weights: Mapping[int, int] | None = None,
                         timeout: float | None = None) -> Blob:
        """Fetch the peer's replica states at the end of ``round_`` (masked, with ``weights``).

        ``timeout``: the call's deadline (default: the peer timeout).
        """
        request = pb.StatesRequest(round=round_, client=self.me, weights_json=json.dumps(
            {str(k): v for k, v in weights.items()}) if weights is not None else "")
        try:
            call = self._stub.GetStates(request,
                                        metadata=self._metadata,
                                        timeout=timeout or self.timeout, wait_for_ready=True)
            return await blob_from_frames(call, self.max_blob_bytes)
        except grpc.aio.AioRpcError as exc:
            raise self.error(exc, "did not send its replica states") from exc

    async def put_model(self, blob: Blob, timeout: float | None = None,
                        pace: Pace | None = None) -> None:
        """Send averaged partitions to the peer (``pace``: see :data:`Pace`)."""
        frames = blob_to_frames(blob)
        try:
            await self._stub.PutModel(frames if pace is None else _paced(frames, pace),
                                      metadata=self._metadata,
                                      timeout=timeout or self.timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            raise self.error(exc, "did not take the averaged model") from exc

    async def finish(self, reason: str) -> None:
        """Tell the peer training is over."""
        await self._unary(self._stub.Finish, pb.NoticeRequest(client=self.me, reason=reason),
                          "did not take the finish notice", 10.0)

    async def abort(self, reason: str) -> None:
        """Tell the peer this client is stopping because of an error."""
        await self._unary(self._stub.Abort, pb.NoticeRequest(client=self.me, reason=reason),
                          "did not take the abort notice", 5.0)

    async def aclose(self) -> None:
        """Close the channel; idempotent. Later calls raise PeerUnavailable."""
        self._closed = True
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub_ = None
