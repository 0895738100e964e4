"""The gRPC server: a token-checking interceptor and a thin servicer over a ``PeerHandler``.

The servicer converts frames to domain messages and calls the handler; the handler raises domain
errors and the servicer answers with their status codes (the table in ``transport.status``).
Note: undecodable. grpc's own deserializer raises on bytes that are no protobuf, which answers
UNKNOWN and logs a traceback; each method is registered instead with a deserializer that turns
them into a value the method refuses with INVALID_ARGUMENT and one log line (a streamed frame:
the stream is refused when it reaches that frame).

Incoming tensors go to ``receive`` (the handler's ``tensor``, or a wrapper that first fetches a
torrent reference's bytes).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from splitnet.errors import ProtocolError, SplitnetError
from splitnet.transport.base import PeerHandler, Receive, Reject
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc
from splitnet.transport.serde import (
    blob_from_frames,
    blob_to_frames,
    task_from_frames,
    tasks_from_stream,
)
from splitnet.transport.status import RefusalLog, kind_of, status_of, task_label

__all__ = ["GRPC_OPTIONS", "REFUSALS", "start_server"]

log = logging.getLogger("splitnet.transport")
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class _TokenInterceptor(grpc.aio.ServerInterceptor):
    """Reject every call that does not carry the cluster token (UNAUTHENTICATED)."""

    def __init__(self, token: str, on_reject: Reject | None = None) -> None:
        self._expected = f"Bearer {token}".encode()
        self._on_reject = on_reject

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        if hmac.compare_digest(given, self._expected) or handler is None:
            return handler
        if self._on_reject:
            self._on_reject(details.method)
        return _deny(handler)


def _deny(handler: Any) -> Any:
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                            "missing or wrong cluster token (SPLITNET_TOKEN)")

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                            "missing or wrong cluster token (SPLITNET_TOKEN)")
        yield  # pragma: no cover

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream)
    return grpc.unary_unary_rpc_method_handler(abort)


async def _then(read: Awaitable[Any], handle: Callable[[Any], Awaitable[None]]) -> None:
    """Read a streamed message, then hand it over (both inside one ``_guard``)."""
    await handle(await read)


REFUSALS = RefusalLog(log)
"""The refused calls' log: one line per calling host and refusal kind per second (Note: bounded
refusal log in ``transport.status``)."""


def _log_refusal(context: grpc.aio.ServicerContext, kind: str, why: str) -> None:
    peer = str(context.peer())
    host = peer.rsplit(":", 1)[0]  # a new connection (port) per call is still the same peer
    REFUSALS.warning(f"{host} {kind}", f"refused a call from {peer}: {why}")


async def _guard(context: grpc.aio.ServicerContext, call: Awaitable[Any]) -> Any:
    try:
        return await call
    except ProtocolError as exc:
        _log_refusal(context, kind_of(exc), str(exc).replace("\n", " "))
        await context.abort(status_of(exc), str(exc))
    except SplitnetError as exc:
        await context.abort(status_of(exc), str(exc))


class _Servicer(pb_grpc.PeerServicer):
    def __init__(self, handler: PeerHandler, receive: Receive) -> None:
        self._h = handler
        self._receive = receive

    async def Join(self, request: Any, context: Any) -> Any:
        try:
            facts = json.loads(request.facts_json or "{}")
        except (ValueError, RecursionError):
            facts = None
        if not isinstance(facts, dict):
            log.warning("refused a join from client %d: its plan facts are not a JSON object",
                        request.client)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "plan facts (facts_json) are not a JSON object")
        result = await _guard(context, self._h.join(request.client, request.fingerprint, facts,
                                                    request.torrent_port, request.tensor_port))
        fingerprint, own, torrent_port, tensor_port = result
        return pb.JoinReply(fingerprint=fingerprint, facts_json=json.dumps(own),
                            torrent_port=torrent_port, tensor_port=tensor_port)

    async def Ping(self, request: Any, context: Any) -> Any:
        return pb.PingReply(round=await _guard(context, self._h.ping(request.client)))

    async def SendTensor(self, request_iterator: Any, context: Any) -> Any:
        await _guard(context, _then(task_from_frames(request_iterator), self._receive))
        return pb.Ack()

    async def TensorStream(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        # Note: tensor stream (transport/stream.py). A message that does not fit the plan gets
        # a refusal naming it; a frame that breaks the stream's framing ends it
        # (INVALID_ARGUMENT).
        messages = tasks_from_stream(request_iterator)
        while True:
            try:
                msg = await _guard(context, anext(messages))
            except StopAsyncIteration:
                return
            try:
                await self._receive(msg)
            except SplitnetError as exc:
                yield pb.TensorAck(error=f"{task_label(msg.owner, msg.stage, msg.batch)}: {exc}",
                                   kind=kind_of(exc))

    async def RoundDone(self, request: Any, context: Any) -> Any:
        await _guard(context, self._h.round_done(request.client, request.round,
                                                 request.stats_json))
        return pb.Ack()

    async def GetStates(self, request: Any, context: Any) -> AsyncIterator[Any]:
        blob = await _guard(context, self._h.get_states(request.round))
        for frame in blob_to_frames(blob):
            yield frame

    async def PutModel(self, request_iterator: Any, context: Any) -> Any:
        await _guard(context, _then(blob_from_frames(request_iterator), self._h.put_model))
        return pb.Ack()

    async def Finish(self, request: Any, context: Any) -> Any:
        await _guard(context, self._h.finish(request.client, request.reason))
        return pb.Ack()

    async def Abort(self, request: Any, context: Any) -> Any:
        await _guard(context, self._h.abort(request.client, request.reason))
        return pb.Ack()


class _Malformed:
    """Stands for request bytes that are no protobuf of the method's type (Note: undecodable)."""

    def __init__(self, what: str, error: str) -> None:
        self.what = what
        self.error = error

    def __str__(self) -> str:
        return f"the bytes are no {self.what} protobuf ({self.error})"


def _tolerant(decode: Callable[[bytes], Any], what: str) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return decode(data)
        except DecodeError as exc:
            return _Malformed(what, str(exc))

    return deserialize


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Malformed):
            raise ProtocolError(f"a frame of the stream: {request}")
        yield request


async def _refuse(context: grpc.aio.ServicerContext, request: _Malformed) -> None:
    _log_refusal(context, "undecodable", str(request))
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request))


def _refusing(handler: Any) -> Any:
    """Return ``handler`` with a deserializer that never raises (Note: undecodable)."""
    what = getattr(handler.request_deserializer, "__qualname__", "").split(".")[0] or "request"
    deserializer = _tolerant(handler.request_deserializer, what)
    if handler.request_streaming and handler.response_streaming:
        both = handler.stream_stream

        async def stream_stream(requests: Any, context: Any) -> AsyncIterator[Any]:
            async for response in both(_checked(requests), context):
                yield response

        return handler._replace(request_deserializer=deserializer, stream_stream=stream_stream)
    if handler.request_streaming:
        reads = handler.stream_unary

        async def stream_unary(requests: Any, context: Any) -> Any:
            return await reads(_checked(requests), context)

        return handler._replace(request_deserializer=deserializer, stream_unary=stream_unary)
    if handler.response_streaming:
        streams = handler.unary_stream

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, _Malformed):
                await _refuse(context, request)
            async for response in streams(request, context):
                yield response

        return handler._replace(request_deserializer=deserializer, unary_stream=unary_stream)
    answers = handler.unary_unary

    async def unary_unary(request: Any, context: Any) -> Any:
        if isinstance(request, _Malformed):
            await _refuse(context, request)
        return await answers(request, context)

    return handler._replace(request_deserializer=deserializer, unary_unary=unary_unary)


class _Registry:
    """Collects the generated method handlers (``add_PeerServicer_to_server`` writes here)."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignore the generic form: :meth:`add_to` builds it from the refusing handlers."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        """Keep the generated handlers, each made to refuse undecodable bytes."""
        self.service = service
        self.handlers = {name: _refusing(h) for name, h in handlers.items()}

    def add_to(self, server: grpc.aio.Server) -> None:
        """Register the refusing handlers on ``server``."""
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(self.service, self.handlers),))
        server.add_registered_method_handlers(self.service, self.handlers)


async def start_server(handler: PeerHandler, host: str, port: int, token: str,
                       on_reject: Reject | None = None, receive: Receive | None = None) -> tuple[
                           grpc.aio.Server, int]:
    """Start serving ``handler`` on ``host:port`` (0 picks a free port); return server, port.

    Raises OSError when the address cannot be bound.
    """
    server = grpc.aio.server(interceptors=[_TokenInterceptor(token, on_reject)],
                             options=GRPC_OPTIONS)
    registry = _Registry()  # Note: undecodable
    pb_grpc.add_PeerServicer_to_server(_Servicer(handler, receive or handler.tensor), registry)
    registry.add_to(server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # newer grpc raises instead of returning 0
        raise OSError(f"cannot listen on {host}:{port}: {exc}") from None
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return server, bound
