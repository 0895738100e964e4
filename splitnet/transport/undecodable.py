"""Request bytes that are no protobuf of the method's type are refused, never raised.

Note: undecodable. grpc calls a method's request deserializer before the servicer sees the call,
and a deserializer that raises ends the call UNKNOWN with a traceback in the log. The generated
handlers are therefore collected in a :class:`Registry` and re-registered with a deserializer that
returns a :class:`_Malformed` value instead; a unary method answers it INVALID_ARGUMENT, a
streamed one refuses the stream at the bad frame (a ``ProtocolError`` inside the servicer's guard).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from splitnet.errors import ProtocolError

__all__ = ["LogRefusal", "Registry"]

LogRefusal = Callable[[grpc.aio.ServicerContext, str, str], None]
"""Logs one refused call: (context, refusal kind, why)."""


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


async def _refuse(context: grpc.aio.ServicerContext, request: _Malformed,
                  log_refusal: LogRefusal) -> None:
    log_refusal(context, "undecodable", str(request))
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request))


def _refusing(handler: Any, log_refusal: LogRefusal) -> Any:
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
                await _refuse(context, request, log_refusal)
            async for response in streams(request, context):
                yield response

        return handler._replace(request_deserializer=deserializer, unary_stream=unary_stream)
    answers = handler.unary_unary

    async def unary_unary(request: Any, context: Any) -> Any:
        if isinstance(request, _Malformed):
            await _refuse(context, request, log_refusal)
        return await answers(request, context)

    return handler._replace(request_deserializer=deserializer, unary_unary=unary_unary)


class Registry:
    """Collects the generated method handlers (``add_PeerServicer_to_server`` writes here)."""

    def __init__(self, log_refusal: LogRefusal) -> None:
        self._log_refusal = log_refusal
        self.service = ""
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignore the generic form: :meth:`add_to` builds it from the refusing handlers."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        """Keep the generated handlers, each made to refuse undecodable bytes."""
        self.service = service
        self.handlers = {name: _refusing(h, self._log_refusal) for name, h in handlers.items()}

    def add_to(self, server: grpc.aio.Server) -> None:
        """Register the refusing handlers on ``server``."""
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(self.service, self.handlers),))
        server.add_registered_method_handlers(self.service, self.handlers)
