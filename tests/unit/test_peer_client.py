"""A closed peer client refuses calls instead of opening a channel nobody would close."""

import asyncio

import pytest

from splitnet.errors import PeerUnavailable
from splitnet.transport.client import PeerClient


def test_a_call_after_aclose_raises_and_opens_no_channel():
    async def main():
        client = PeerClient(2, "127.0.0.1:1", "test-token-0123456789", 1, timeout=1.0)
        await client.aclose()
        await client.aclose()  # idempotent
        with pytest.raises(PeerUnavailable, match=r"client 2 \(127\.0\.0\.1:1\).*closed"):
            await client.ping(timeout=1.0)
        assert client._channel is None

    asyncio.run(main())
