"""Conversions between domain messages and protobuf frames: ``x_to_frames`` / ``x_from_frames``.

Large payloads are cut into chunks of ``CHUNK_BYTES``; the first frame carries the header. The
receiver validates the header before accumulating data and stops reading once more bytes than
announced arrive.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterator

from splitnet.errors import ProtocolError
from splitnet.transport.codec import TensorMeta, check_meta, decode_tensor, encode_tensor
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.messages import Blob, TaskMessage

__all__ = ["CHUNK_BYTES", "MAX_BLOB_BYTES", "blob_from_frames", "blob_to_frames",
           "task_from_frames", "task_to_frames"]

CHUNK_BYTES = 4 * 1024 * 1024
MAX_BLOB_BYTES = 8 * 1024**3


def _chunks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        yield bytes(view[start:start + CHUNK_BYTES])


def task_to_frames(msg: TaskMessage) -> Iterator[pb.TensorFrame]:
    """Yield the frames of one activation/gradient."""
    meta, data = encode_tensor(msg.tensor)
    header = pb.TaskHeader(owner=msg.owner, stage=msg.stage, batch=msg.batch, round=msg.round,
                           sender=msg.sender, tensor=pb.TensorHeader(
                               dtype=meta.dtype, shape=list(meta.shape), nbytes=meta.nbytes))
    chunks = list(_chunks(data)) or [b""]
    yield pb.TensorFrame(header=header, data=chunks[0])
    for chunk in chunks[1:]:
        yield pb.TensorFrame(data=chunk)


async def task_from_frames(frames: AsyncIterable[pb.TensorFrame]) -> TaskMessage:
    """Read frames into a validated :class:`TaskMessage`."""
    header: pb.TaskHeader | None = None
    meta: TensorMeta | None = None
    buffer = bytearray()
    async for frame in frames:
        if header is None:
            if not frame.HasField("header"):
                raise ProtocolError("the first frame carries no header")
            header = frame.header
            meta = TensorMeta(header.tensor.dtype, tuple(header.tensor.shape),
                              header.tensor.nbytes)
            check_meta(meta)
        elif frame.HasField("header"):
            raise ProtocolError("a second header arrived in one message")
        buffer += frame.data
        if meta is not None and len(buffer) > meta.nbytes:
            raise ProtocolError(f"more than the announced {meta.nbytes} bytes arrived")
    if header is None or meta is None:
        raise ProtocolError("empty message: no header")
    tensor = decode_tensor(meta, buffer)
    return TaskMessage(header.owner, header.stage, header.batch, header.round, header.sender,
                       tensor)


def blob_to_frames(blob: Blob) -> Iterator[pb.BlobFrame]:
    """Yield the frames of a bulk object."""
    header = pb.BlobHeader(kind=blob.kind, round=blob.round, sender=blob.sender,
                           nbytes=len(blob.data), meta_json=json.dumps(blob.meta))
    chunks = list(_chunks(blob.data)) or [b""]
    yield pb.BlobFrame(header=header, data=chunks[0])
    for chunk in chunks[1:]:
        yield pb.BlobFrame(data=chunk)


async def blob_from_frames(frames: AsyncIterable[pb.BlobFrame]) -> Blob:
    """Read frames into a :class:`Blob`, checking the announced size."""
    header: pb.BlobHeader | None = None
    buffer = bytearray()
    async for frame in frames:
        if header is None:
            if not frame.HasField("header"):
                raise ProtocolError("the first frame carries no header")
            header = frame.header
            if header.nbytes > MAX_BLOB_BYTES:
                raise ProtocolError(f"blob of {header.nbytes} bytes exceeds {MAX_BLOB_BYTES}")
        buffer += frame.data
        if len(buffer) > header.nbytes:
            raise ProtocolError(f"more than the announced {header.nbytes} bytes arrived")
    if header is None:
        raise ProtocolError("empty message: no header")
    if len(buffer) != header.nbytes:
        raise ProtocolError(f"received {len(buffer)} bytes but the header says {header.nbytes}")
    try:
        meta = json.loads(header.meta_json or "{}")
    except ValueError:
        raise ProtocolError("blob metadata is not JSON") from None
    return Blob(header.kind, header.round, header.sender, bytes(buffer), meta)
