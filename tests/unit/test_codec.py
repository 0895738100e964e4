import asyncio

import pytest
import torch

from splitnet.errors import ProtocolError
from splitnet.transport import serde
from splitnet.transport.codec import DTYPES, TensorMeta, decode_tensor, encode_tensor
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.messages import Blob, TaskMessage


@pytest.mark.parametrize("name", sorted(DTYPES))
@pytest.mark.parametrize("shape", [(), (0, 3), (5,), (2, 3, 4)])
def test_every_dtype_round_trips_bit_exactly(name, shape):
    tensor = (torch.randn(shape) * 50).to(DTYPES[name])
    meta, data = encode_tensor(tensor)
    back = decode_tensor(meta, data)
    assert back.dtype == tensor.dtype and back.shape == tensor.shape
    assert back.view(-1).view(torch.uint8).tolist() == tensor.reshape(-1).view(torch.uint8).tolist()


def test_non_contiguous_tensor_is_sent_in_logical_order():
    tensor = torch.arange(12.0).reshape(3, 4).t()
    assert torch.equal(decode_tensor(*encode_tensor(tensor)), tensor)


@pytest.mark.parametrize("meta, data, message", [
    (TensorMeta("object", (1,), 8), b"\0" * 8, "not allowed"),
    (TensorMeta("float32", (2, 2), 12), b"\0" * 12, "needs 16"),
    (TensorMeta("float32", (-1,), 4), b"\0" * 4, "invalid"),
    (TensorMeta("float32", (2,), 8), b"\0" * 7, "received 7 bytes"),
    (TensorMeta("uint8", (3 * 1024**3,), 3 * 1024**3), b"", "exceeds the limit"),
])
def test_malformed_headers_are_rejected(meta, data, message):
    with pytest.raises(ProtocolError, match=message):
        decode_tensor(meta, data)


async def _frames(frames):
    for frame in frames:
        yield frame


def test_large_tensor_is_chunked_and_reassembled(monkeypatch):
    monkeypatch.setattr(serde, "CHUNK_BYTES", 1000)
    msg = TaskMessage(2, 3, 7, 1, 4, torch.randn(100, 30))
    frames = list(serde.task_to_frames(msg))
    assert len(frames) == 12 and frames[0].HasField("header")
    back = asyncio.run(serde.task_from_frames(_frames(frames)))
    assert (back.owner, back.stage, back.batch, back.round, back.sender) == (2, 3, 7, 1, 4)
    assert torch.equal(back.tensor, msg.tensor)


def test_frames_with_more_bytes_than_announced_are_rejected():
    frames = list(serde.task_to_frames(TaskMessage(1, 2, 0, 0, 1, torch.zeros(4))))
    frames.append(pb.TensorFrame(data=b"extra"))
    with pytest.raises(ProtocolError, match="more than the announced"):
        asyncio.run(serde.task_from_frames(_frames(frames)))


def test_frames_without_header_are_rejected():
    with pytest.raises(ProtocolError, match="no header"):
        asyncio.run(serde.task_from_frames(_frames([pb.TensorFrame(data=b"x")])))
    with pytest.raises(ProtocolError, match="no header"):
        asyncio.run(serde.blob_from_frames(_frames([])))


def test_blob_round_trip_keeps_metadata():
    blob = Blob("states", 3, 2, b"x" * 10_000, {"sent": 5})
    back = asyncio.run(serde.blob_from_frames(_frames(serde.blob_to_frames(blob))))
    assert back == blob


def test_many_chunk_message_is_reassembled_in_order(monkeypatch):
    monkeypatch.setattr(serde, "CHUNK_BYTES", 64)
    msg = TaskMessage(1, 2, 3, 4, 5, torch.arange(5000, dtype=torch.int32))
    frames = list(serde.task_to_frames(msg))
    assert len(frames) == 313
    back = asyncio.run(serde.task_from_frames(_frames(frames)))
    assert torch.equal(back.tensor, msg.tensor)


def test_many_chunk_messages_back_to_back_on_one_stream(monkeypatch):
    monkeypatch.setattr(serde, "CHUNK_BYTES", 100)
    sent = [TaskMessage(1, 2, b, 0, 1, torch.randn(50 + b)) for b in range(5)]
    frames = [frame for msg in sent for frame in serde.task_to_frames(msg)]

    async def read():
        return [m async for m in serde.tasks_from_stream(_frames(frames))]

    back = asyncio.run(read())
    assert [m.batch for m in back] == list(range(5))
    assert all(torch.equal(a.tensor, b.tensor) for a, b in zip(sent, back, strict=True))


def test_chunks_beyond_the_announced_size_are_refused_at_once(monkeypatch):
    monkeypatch.setattr(serde, "CHUNK_BYTES", 16)
    frames = list(serde.task_to_frames(TaskMessage(1, 2, 0, 0, 1, torch.zeros(40))))
    frames[-1] = pb.TensorFrame(data=frames[-1].data + b"x" * 17)
    consumed = []

    async def stream():
        for frame in [*frames, pb.TensorFrame(data=b"never read")]:
            consumed.append(frame)
            yield frame

    with pytest.raises(ProtocolError, match="more than the announced 160 bytes"):
        asyncio.run(serde.task_from_frames(stream()))
    assert len(consumed) == len(frames)


def test_a_second_header_or_a_truncated_chunked_message_is_refused(monkeypatch):
    monkeypatch.setattr(serde, "CHUNK_BYTES", 16)
    frames = list(serde.task_to_frames(TaskMessage(1, 2, 0, 0, 1, torch.zeros(40))))
    with pytest.raises(ProtocolError, match="second header"):
        asyncio.run(serde.task_from_frames(_frames(frames[:3] + frames[:1])))
    with pytest.raises(ProtocolError, match="received 64 bytes but the header says 160"):
        asyncio.run(serde.task_from_frames(_frames(frames[:4])))


def test_a_blob_claiming_more_than_the_limit_is_refused_before_its_data_is_read():
    blob = Blob("model", 2, 1, b"x" * 1000, {})
    consumed = []

    async def stream():
        for frame in serde.blob_to_frames(blob):
            consumed.append(frame)
            yield frame

    with pytest.raises(ProtocolError, match=r"model object of round 2 from client 1 claims 1000 "
                                            r"bytes \(limit 999\)"):
        asyncio.run(serde.blob_from_frames(stream(), limit=999))
    assert asyncio.run(serde.blob_from_frames(_frames(serde.blob_to_frames(blob)), 1000)) == blob
    header = pb.BlobHeader(kind="states", nbytes=serde.MAX_BLOB_BYTES + 1)
    with pytest.raises(ProtocolError, match="limit"):  # the default limit still holds
        asyncio.run(serde.blob_from_frames(_frames([pb.BlobFrame(header=header)])))


def test_a_torrent_reference_larger_than_the_bulk_limit_is_refused_before_fetching():
    from splitnet.transport.bulk import TorrentBulk
    from splitnet.transport.torrent import TorrentRef

    class Swarm:
        me = 3

        async def fetch(self, ref, sources):
            raise AssertionError("nothing may be fetched")

    ref = TorrentRef("model-r1-c1.safetensors", "ab" * 20, b"meta", 5000, "0" * 64)
    blob = Blob("model", 1, 1, b"", {"torrent": ref.to_json(), "sources": [1]})
    with pytest.raises(ProtocolError, match=r"claims 5000 bytes \(limit 4096\)"):
        asyncio.run(TorrentBulk(Swarm(), max_bytes=4096).into(blob))


def test_a_grpc_tensor_larger_than_the_limit_is_refused_from_its_header():
    frames = list(serde.task_to_frames(TaskMessage(1, 2, 0, 0, 1, torch.zeros(300))))
    with pytest.raises(ProtocolError, match="exceeds the limit of 1000"):
        asyncio.run(serde.task_from_frames(_frames(frames[:1]), limit=1000))

    async def read():
        return [m async for m in serde.tasks_from_stream(_frames(frames), limit=1200)]

    assert len(asyncio.run(read())) == 1
