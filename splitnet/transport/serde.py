"""Conversions between domain messages and protobuf frames: ``x_to_frames`` / ``x_from_frames``.

Large payloads are cut into chunks of ``CHUNK_BYTES``; the first frame carries the header. The
receiver validates the header before accumulating data and stops reading once more bytes than
announced arrive.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any

from splitnet.errors import ProtocolError
from splitnet.transport.codec import (
    MAX_TENSOR_BYTES,
    TensorMeta,
    check_meta,
    decode_tensor,
    encode_tensor,
    tensor_meta,
)
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.messages import Blob, TaskMessage

__all__ = ["CHUNK_BYTES", "MAX_BLOB_BYTES", "MAX_FRAME_BYTES", "blob_from_frames", "blob_to_frames",
           "checked_tensor_size", "task_from_frames",
           "task_header", "task_message", "task_to_frames", "tasks_from_stream"]

CHUNK_BYTES = 4 * 1024 * 1024
MAX_FRAME_BYTES = CHUNK_BYTES + 1024 * 1024
"""The largest gRPC message: one chunk plus its header (gRPC refuses a larger one unread)."""
MAX_BLOB_BYTES = 8 * 1024**3


def _frames(frame_type: Any, header: Any, data: bytes) -> Iterator[Any]:
    """Yield ``frame_type`` frames: the header with the first chunk, then the other chunks."""
    if len(data) <= CHUNK_BYTES:  # the common case: one frame, no slicing copy
        yield frame_type(header=header, data=data)
        return
    view = memoryview(data)
    for index, start in enumerate(range(0, len(data), CHUNK_BYTES)):
        chunk = bytes(view[start:start + CHUNK_BYTES])
        yield frame_type(header=header, data=chunk) if index == 0 else frame_type(data=chunk)


async def _messages(frames: AsyncIterable[Any], announced: Callable[[Any], int]) -> AsyncIterator[
        tuple[Any, bytes | bytearray]]:
    """Yield (header, data) per message; ``announced`` checks a header and returns its size.

    A message is a header frame followed by data frames until the announced size is reached, so
    one stream can carry many messages back to back.
    """
    header: Any = None
    size, previous, received = 0, -1, 0
    parts: list[bytes] = []  # Note: linear reassembly: chunks are joined once, when complete
    async for frame in frames:
        if header is None:
            if not frame.HasField("header") and previous >= 0:
                raise ProtocolError(f"more than the announced {previous} bytes arrived")
            if not frame.HasField("header"):
                raise ProtocolError("the first frame carries no header")
            header = frame.header
            size = announced(header)
        elif frame.HasField("header"):
            raise ProtocolError("a second header arrived in one message")
        received += len(frame.data)
        if received > size:
            raise ProtocolError(f"more than the announced {size} bytes arrived")
        if frame.data:
            parts.append(frame.data)
        if received == size:
            # no copy while the message is one frame
            yield header, parts[0] if len(parts) == 1 else bytearray().join(parts)
            header, parts, received, previous = None, [], 0, size
    if header is not None:
        raise ProtocolError(f"received {received} bytes but the header says {size}")


async def _read(frames: AsyncIterable[Any], announced: Callable[[Any], int]) -> tuple[
        Any, bytes | bytearray]:
    """Read exactly one message from a stream of frames."""
    result = None
    async for message in _messages(frames, announced):
        if result is not None:
            raise ProtocolError("a second header arrived in one message")
        result = message
    if result is None:
        raise ProtocolError("empty message: no header")
    return result


def _tensor_meta(header: pb.TaskHeader) -> TensorMeta:
    return TensorMeta(header.tensor.dtype, tuple(header.tensor.shape), header.tensor.nbytes)


def checked_tensor_size(header: pb.TaskHeader, limit: int = MAX_TENSOR_BYTES) -> int:
    """Check a task header's tensor description; return how many data bytes follow it.

    A tensor of more than ``limit`` bytes is refused (ProtocolError) before its data is read.
    """
    meta = _tensor_meta(header)
    check_meta(meta, limit)
    return 0 if header.torrent_json else meta.nbytes


def _blob_size_within(limit: int) -> Callable[[pb.BlobHeader], int]:
    def checked(header: pb.BlobHeader) -> int:
        if header.nbytes > limit:
            raise ProtocolError(f"{header.kind or 'bulk'} object of round {header.round} from "
                                f"client {header.sender} claims {header.nbytes} bytes "
                                f"(limit {limit})")
        return int(header.nbytes)
    return checked


def task_header(msg: TaskMessage) -> pb.TaskHeader:
    """Return the header of one activation/gradient (its tensor, or its torrent reference)."""
    if msg.torrent is not None:
        assert msg.meta is not None, "a torrent reference needs the tensor's meta"
        meta = msg.meta
    else:
        assert msg.tensor is not None
        meta = tensor_meta(msg.tensor)
    return pb.TaskHeader(owner=msg.owner, stage=msg.stage, batch=msg.batch, round=msg.round,
                         sender=msg.sender, tensor=pb.TensorHeader(
                             dtype=meta.dtype, shape=list(meta.shape), nbytes=meta.nbytes),
                         torrent_json=json.dumps(msg.torrent) if msg.torrent else "")


def task_to_frames(msg: TaskMessage) -> Iterator[pb.TensorFrame]:
    """Yield the frames of one activation/gradient (only a header for a torrent reference)."""
    data = b"" if msg.tensor is None or msg.torrent is not None else encode_tensor(msg.tensor)[1]
    return _frames(pb.TensorFrame, task_header(msg), data)


def _tensor_size_within(limit: int) -> Callable[[pb.TaskHeader], int]:
    return lambda header: checked_tensor_size(header, limit)


async def task_from_frames(frames: AsyncIterable[pb.TensorFrame],
                           limit: int = MAX_TENSOR_BYTES) -> TaskMessage:
    """Read frames into a validated :class:`TaskMessage` of at most ``limit`` tensor bytes."""
    return task_message(*await _read(frames, _tensor_size_within(limit)))


async def tasks_from_stream(frames: AsyncIterable[pb.TensorFrame],
                            limit: int = MAX_TENSOR_BYTES) -> AsyncIterator[TaskMessage]:
    """Read a long-lived stream of frames into validated :class:`TaskMessage` s, one by one.

    A tensor of more than ``limit`` bytes is refused from its header, before its data.
    """
    async for header, data in _messages(frames, _tensor_size_within(limit)):
        yield task_message(header, data)


def task_message(header: pb.TaskHeader, data: bytes | bytearray) -> TaskMessage:
    """Build a validated :class:`TaskMessage` from a checked header and its data."""
    meta = _tensor_meta(header)
    if header.torrent_json:
        try:
            torrent = json.loads(header.torrent_json)
        except ValueError:
            raise ProtocolError("torrent reference is not JSON") from None
        if not isinstance(torrent, dict):
            raise ProtocolError("torrent reference is not an object")
        return TaskMessage(header.owner, header.stage, header.batch, header.round,
                           header.sender, None, torrent, meta)
    return TaskMessage(header.owner, header.stage, header.batch, header.round, header.sender,
                       decode_tensor(meta, data), None, meta)


def blob_to_frames(blob: Blob) -> Iterator[pb.BlobFrame]:
    """Yield the frames of a bulk object."""
    header = pb.BlobHeader(kind=blob.kind, round=blob.round, sender=blob.sender,
                           nbytes=len(blob.data), meta_json=json.dumps(blob.meta))
    return _frames(pb.BlobFrame, header, blob.data)


async def blob_from_frames(frames: AsyncIterable[pb.BlobFrame],
                           limit: int = MAX_BLOB_BYTES) -> Blob:
    """Read frames into a :class:`Blob`, checking the announced size.

    A header that claims more than ``limit`` bytes (the node can pass its model's size) is
    refused before any data is kept.
    """
    header, buffer = await _read(frames, _blob_size_within(limit))
    try:
        meta = json.loads(header.meta_json or "{}")
    except ValueError:
        raise ProtocolError("blob metadata is not JSON") from None
    return Blob(header.kind, header.round, header.sender, bytes(buffer), meta)
