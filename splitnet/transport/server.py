"""The gRPC server: a token-checking interceptor and a thin servicer over a ``PeerHandler``.

Note: identity from the certificate. With a TLS identity the server takes only callers that
present a certificate from the cluster CA (mutual TLS; no token), and the caller's client number
is the one its certificate names (``clientK``). Every request field that names its sender (a
join's, ping's, round report's or notice's ``client``, a tensor's or a model's ``sender``) must
equal it: anything else is refused PERMISSION_DENIED, counted (``auth``) and logged.

The servicer converts frames to domain messages and calls the handler; the handler raises domain
errors and the servicer answers with their status codes (the table in ``transport.status``).
Bytes that are no protobuf of a method's type are refused with INVALID_ARGUMENT and one log line
(Note: undecodable, in ``transport.undecodable``).

Incoming tensors go to ``receive`` (the handler's ``tensor``, or a wrapper that first fetches a
torrent reference's bytes).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from splitnet.errors import ProtocolError, SplitnetError
from splitnet.transport.base import PeerHandler, Receive, Reject
from splitnet.transport.codec import MAX_TENSOR_BYTES
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc
from splitnet.transport.listen import bind_problem
from splitnet.transport.serde import (
    MAX_BLOB_BYTES,
    MAX_FRAME_BYTES,
    blob_from_frames,
    blob_to_frames,
    task_from_frames,
    tasks_from_stream,
)
from splitnet.transport.status import RefusalLog, kind_of, status_of, task_label
from splitnet.transport.tls import Identity, client_number
from splitnet.transport.undecodable import Registry

__all__ = ["GRPC_OPTIONS", "REFUSALS", "start_server"]

log = logging.getLogger("splitnet.transport")
T = TypeVar("T")
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_FRAME_BYTES),
    ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
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
            self._on_reject(details.method, "auth")
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
    def __init__(self, handler: PeerHandler, receive: Receive, max_tensor_bytes: int,
                 max_blob_bytes: int, on_reject: Reject | None, tls: bool = False) -> None:
        self._h = handler
        self._receive = receive
        self._max_tensor_bytes = max_tensor_bytes
        self._max_blob_bytes = max_blob_bytes
        self._on_reject = on_reject
        self._tls = tls  # Note: identity from the certificate

    async def _speaks_for(self, method: str, context: Any, claimed: int) -> None:
        """Refuse (PERMISSION_DENIED) a caller whose certificate names another client."""
        if not self._tls:
            return
        names = context.auth_context().get("x509_common_name", [])
        caller = client_number(names[0]) if names else None
        if caller is not None and caller == claimed:
            return
        if self._on_reject:
            self._on_reject(method, "auth")
        why = (f"the certificate of client {caller} cannot speak for client {claimed}"
               if caller is not None else "the caller's certificate names no client")
        _log_refusal(context, "auth", f"{method}: {why}")
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)

    async def _sender_checked(self, method: str, context: Any, msg: Any) -> Any:
        await self._speaks_for(method, context, msg.sender)
        return msg

    async def _read(self, method: str, read: Awaitable[T]) -> T:
        """Await one streamed message; a frame that breaks a limit is counted (``limit``)."""
        try:
            return await read
        except ProtocolError:
            if self._on_reject:
                self._on_reject(method, "limit")
            raise

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
        await self._speaks_for("Join", context, request.client)
        result = await _guard(context, self._h.join(request.client, request.fingerprint, facts,
                                                    request.torrent_port, request.tensor_port,
                                                    request.run_id))
        fingerprint, own, torrent_port, tensor_port, run_id = result
        return pb.JoinReply(fingerprint=fingerprint, facts_json=json.dumps(own),
                            torrent_port=torrent_port, tensor_port=tensor_port, run_id=run_id)

    async def Ping(self, request: Any, context: Any) -> Any:
        await self._speaks_for("Ping", context, request.client)
        return pb.PingReply(round=await _guard(context, self._h.ping(request.client)))

    async def SendTensor(self, request_iterator: Any, context: Any) -> Any:
        msg = await _guard(context, self._read("SendTensor", task_from_frames(
            request_iterator, self._max_tensor_bytes)))
        await self._speaks_for("SendTensor", context, msg.sender)
        await _guard(context, self._receive(msg))
        return pb.Ack()

    async def TensorStream(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        # Note: tensor stream (transport/stream.py). A message that does not fit the plan gets
        # a refusal naming it; a frame that breaks the stream's framing ends it
        # (INVALID_ARGUMENT).
        messages = tasks_from_stream(request_iterator, self._max_tensor_bytes)
        while True:
            try:
                msg = await _guard(context, self._read("TensorStream", anext(messages)))
            except StopAsyncIteration:
                return
            await self._speaks_for("TensorStream", context, msg.sender)
            try:
                await self._receive(msg)
            except SplitnetError as exc:
                yield pb.TensorAck(error=f"{task_label(msg.owner, msg.stage, msg.batch)}: {exc}",
                                   kind=kind_of(exc))

    async def RoundDone(self, request: Any, context: Any) -> Any:
        await self._speaks_for("RoundDone", context, request.client)
        await _guard(context, self._h.round_done(request.client, request.round,
                                                 request.stats_json))
        return pb.Ack()

    async def GetStates(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await self._speaks_for("GetStates", context, request.client)
        weights = await _guard(context, _weights(request.weights_json))
        blob = await _guard(context, self._h.get_states(request.client, request.round, weights))
        for frame in blob_to_frames(blob):
            yield frame

    async def PutModel(self, request_iterator: Any, context: Any) -> Any:
        blob = await _guard(context, self._read("PutModel", blob_from_frames(
            request_iterator, self._max_blob_bytes)))
        await self._speaks_for("PutModel", context, blob.sender)
        await _guard(context, self._h.put_model(blob))
        return pb.Ack()

    async def Finish(self, request: Any, context: Any) -> Any:
        await self._speaks_for("Finish", context, request.client)
        await _guard(context, self._h.finish(request.client, request.reason))
        return pb.Ack()

    async def Abort(self, request: Any, context: Any) -> Any:
        await self._speaks_for("Abort", context, request.client)
        await _guard(context, self._h.abort(request.client, request.reason))
        return pb.Ack()


async def _weights(text: str) -> dict[int, int] | None:
    """Parse a states pull's owner sample counts (ProtocolError if malformed; None if absent)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or len(data) > 100_000:
            raise ValueError("not an object of at most 100000 owners")
        return {int(k): v for k, v in data.items()}
    except (ValueError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"a states pull's weights_json is malformed: {exc}") from None


def _add_port(server: grpc.aio.Server, address: str, identity: Identity | None) -> int:
    """Bind ``address``; return the port, or 0 when it cannot be bound."""
    try:
        if identity is None:
            return int(server.add_insecure_port(address))
        return int(server.add_secure_port(address, grpc.ssl_server_credentials(
            [(identity.key_pem, identity.cert_pem)], root_certificates=identity.ca_pem,
            require_client_auth=True)))
    except RuntimeError:  # newer grpc raises instead of returning 0
        return 0


async def start_server(handler: PeerHandler, host: str, port: int, token: str,
                       on_reject: Reject | None = None, receive: Receive | None = None,
                       max_tensor_bytes: int = MAX_TENSOR_BYTES,
                       max_blob_bytes: int = MAX_BLOB_BYTES,
                       identity: Identity | None = None) -> tuple[grpc.aio.Server, int]:
    """Start serving ``handler`` on ``host:port`` (0 picks a free port); return server, port.

    A tensor (SendTensor, TensorStream) of more than ``max_tensor_bytes`` or a model (PutModel)
    of more than ``max_blob_bytes`` is refused from its header, before its data is kept.
    With ``identity``: mutual TLS, callers known by their certificates (Note: identity from the
    certificate); without: the token. Raises OSError, saying why, when the address cannot be
    bound (Note: bind failures).
    """
    interceptors = [] if identity is not None else [_TokenInterceptor(token, on_reject)]
    server = grpc.aio.server(interceptors=interceptors, options=GRPC_OPTIONS)
    servicer = _Servicer(handler, receive or handler.tensor, max_tensor_bytes, max_blob_bytes,
                         on_reject, tls=identity is not None)
    registry = Registry(_log_refusal)  # Note: undecodable
    pb_grpc.add_PeerServicer_to_server(servicer, registry)
    registry.add_to(server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = _add_port(server, address, identity)
    if bound == 0 and (problem := bind_problem(host, port)) is not None:
        raise problem  # Note: bind failures (transport/listen.py): why, or bound at a retry
    bound = bound or _add_port(server, address, identity)
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return server, bound
