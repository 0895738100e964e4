"""Malformed control input on a real gRPC server: INVALID_ARGUMENT, one line, still serving."""

import asyncio
import random

import grpc
import pytest
import torch
from safetensors.torch import save as save_safetensors

from splitnet.errors import ProtocolError
from splitnet.transport import server
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc
from splitnet.transport.messages import Blob
from splitnet.transport.status import RefusalLog

from .test_runtime import LONELY_TOKEN, serving_lonely_node

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("facts_json", ["[1, 2]", "not json", "[" * 100000])
def test_a_join_with_facts_that_are_no_object_is_invalid_argument(tmp_path, caplog, facts_json):
    async def scenario():
        _, address, running, good = await serving_lonely_node(tmp_path)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.PeerStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Join(pb.JoinRequest(client=2, fingerprint="x", facts_json=facts_json),
                                metadata=(("authorization", f"Bearer {LONELY_TOKEN}"),), timeout=5.0)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert await good.ping(timeout=5.0) == 0  # still serving
        running.cancel()
        await good.aclose()

    with caplog.at_level("WARNING"):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert any("not a JSON object" in r.getMessage() for r in caplog.records)


METHODS = ["Join", "Ping", "SendTensor", "TensorStream", "RoundDone", "GetStates", "PutModel",
           "Finish", "Abort"]


def test_undecodable_bytes_to_every_method_are_invalid_argument_without_traceback(tmp_path,
                                                                                  caplog):
    rng = random.Random(12)
    junk = [b"\xff" * 7, bytes(rng.randrange(256) for _ in range(64)), b"\x0a\xff\xff\xff\xff"]
    codes: dict[str, list[grpc.StatusCode]] = {}

    async def scenario():
        _, address, running, good = await serving_lonely_node(tmp_path)
        auth = (("authorization", f"Bearer {LONELY_TOKEN}"),)
        async with grpc.aio.insecure_channel(address) as channel:
            for method in METHODS:
                path = f"/splitnet.v1.Peer/{method}"
                for data in junk:
                    if method in ("SendTensor", "PutModel", "TensorStream"):
                        call = (channel.stream_stream if method == "TensorStream"
                                else channel.stream_unary)(path)(iter([data]), metadata=auth,
                                                                 timeout=5.0)
                    elif method == "GetStates":
                        call = channel.unary_stream(path)(data, metadata=auth, timeout=5.0)
                    else:
                        call = channel.unary_unary(path)(data, metadata=auth, timeout=5.0)
                    try:
                        if method in ("TensorStream", "GetStates"):
                            async for _ in call:
                                pass
                        else:
                            await call
                    except grpc.aio.AioRpcError as exc:
                        codes.setdefault(method, []).append(exc.code())
                assert await good.ping(timeout=5.0) == 0  # still serving
        running.cancel()
        await good.aclose()

    with caplog.at_level("WARNING"):
        asyncio.run(scenario())
    # Note: some random bytes happen to decode (protobuf skips unknown fields); those are
    # answered by the method itself — never UNKNOWN.
    assert set(codes) == set(METHODS), codes
    assert all(code == grpc.StatusCode.INVALID_ARGUMENT for c in codes.values() for code in c), codes
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not any("Traceback" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("blob, rule", [
    (Blob("initial", 0, 1, b"not safetensors at all", {}), "not safetensors"),
    (Blob("initial", 0, 1, save_safetensors({"1/w": torch.tensor([float("nan")])}), {}),
     "lacks"),
    (Blob("model", 3, 2, save_safetensors({"1/w": torch.zeros(1)}), {}), "only the aggregator"),
])
def test_a_forged_put_model_is_invalid_argument(tmp_path, caplog, monkeypatch, blob, rule):
    # Note: refusal lines are limited per peer and kind; a fresh log so this one is written.
    monkeypatch.setattr(server, "REFUSALS", RefusalLog(server.log))

    async def scenario():
        _, _, running, good = await serving_lonely_node(tmp_path)
        with pytest.raises(ProtocolError) as caught:  # what INVALID_ARGUMENT maps to
            await good.put_model(blob)
        assert await good.ping(timeout=5.0) == 0  # still serving
        running.cancel()
        await good.aclose()
        return caught.value

    with caplog.at_level("WARNING"):
        error = asyncio.run(scenario())
    assert rule in str(error)
    assert any(rule in r.getMessage() and "INVALID" not in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
