"""The transfer bench's gRPC receivers: sinks that only take blobs, and a paced uplink."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

from splitnet.errors import RuntimeFailure, TransferFailed
from splitnet.transport.messages import Blob
from splitnet.transport.network import GrpcNetwork, NetworkOptions
from splitnet.transport.ports import free_ports

__all__ = ["Pacer", "Sink", "serve_sinks"]


class Sink:
    """A peer that only takes blobs (the other calls are not part of the benchmark)."""

    def __init__(self) -> None:
        self.received = 0

    async def put_model(self, blob: Blob) -> None:
        """Count the blob's bytes."""
        self.received += len(blob.data)

    async def join(self, *args: Any) -> Any:
        """Refuse: only blobs are part of the benchmark."""
        raise RuntimeFailure("not in the benchmark")

    ping = tensor = round_done = get_states = finish = abort = join


def _no_failure(failure: TransferFailed) -> None:
    raise AssertionError(f"the benchmark sends no tensors: {failure}")


async def serve_sinks(stack: AsyncExitStack, sinks: list[Sink], token: str) -> list[str]:
    """Serve each sink as client 1 of its own network (control only); return the addresses."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(len(sinks))]
    for sink, address in zip(sinks, addresses, strict=True):
        network = await stack.enter_async_context(GrpcNetwork(NetworkOptions(
            me=1, addresses=[address], token=token, listen_host="127.0.0.1",
            activation_transport="grpc", bulk_transport="grpc")))
        await network.serve(sink, _no_failure)
    return addresses


class Pacer:
    """A shared uplink of ``rate`` bytes/s."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.start = time.perf_counter()
        self.sent = 0

    async def take(self, n: int) -> None:
        """Wait until ``n`` more bytes fit under the rate."""
        self.sent += n
        ahead = self.sent / self.rate - (time.perf_counter() - self.start)
        if ahead > 0:
            await asyncio.sleep(ahead)
