"""Malformed control input on a real gRPC server: INVALID_ARGUMENT, one line, still serving."""

import asyncio

import grpc
import pytest

from splitnet.errors import RuntimeFailure
from splitnet.transport.client import PeerClient
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.generated import splitnet_pb2_grpc as pb_grpc

from .test_runtime import _lonely_node

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("facts_json", ["[1, 2]", "not json", "[" * 100000])
def test_a_join_with_facts_that_are_no_object_is_invalid_argument(tmp_path, caplog, facts_json):
    async def scenario():
        node = _lonely_node(tmp_path)
        address = node.network.options.addresses[0]
        running = asyncio.ensure_future(node.run())
        good = PeerClient(1, address, "right-token-0123456789", 2, 10.0)
        for _ in range(100):
            try:
                await good.ping(timeout=1.0)
                break
            except RuntimeFailure:
                await asyncio.sleep(0.05)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.PeerStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Join(pb.JoinRequest(client=2, fingerprint="x", facts_json=facts_json),
                                metadata=(("authorization", "Bearer right-token-0123456789"),), timeout=5.0)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert await good.ping(timeout=5.0) == 0  # still serving
        running.cancel()
        await good.aclose()

    with caplog.at_level("WARNING"):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert any("not a JSON object" in r.getMessage() for r in caplog.records)
