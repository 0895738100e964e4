"""The round-end exchange pattern, BitTorrent against gRPC, uncapped and with capped uplinks.

One aggregator (client 0) and ``clients - 1`` others: every other client sends its state of
``size`` bytes to the aggregator (gather), then the aggregator sends the averaged model back to
all of them (broadcast); the payload of a ResNet18 is 45 MiB. With every uplink capped at B,
gRPC needs S/B for the gather and (clients - 1) x S/B for the broadcast from the aggregator's
uplink; BitTorrent's broadcast swarms (Note: shard first, in transport/pieces.py). The
figure is torrent seconds ÷ gRPC seconds from the same run. The full training run
(``--resnet``) measures the same exchange inside ``splitnet local``, uncapped only.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from contextlib import AsyncExitStack
from pathlib import Path

from splitnet.bench.sinks import Pacer, Sink, serve_sinks
from splitnet.transport.client import PeerClient
from splitnet.transport.messages import Blob
from splitnet.transport.torrent import TorrentSession

__all__ = ["exchange_rows"]


def _payloads(clients: int, size: int) -> list[bytes]:
    rng = random.Random(17)
    return [rng.randbytes(size) for _ in range(clients)]


async def _torrent(clients: int, size: int, cap: int, workdir: Path) -> float:
    sessions = [TorrentSession(workdir / f"x{time.time_ns()}-{i}", "127.0.0.1", 0,
                               upload_limit=cap) for i in range(clients)]
    try:
        data = _payloads(clients, size)
        everyone = [("127.0.0.1", s.port) for s in sessions]

        async def gather_state(i: int) -> None:  # each client publishes as its own process would
            ref = await asyncio.to_thread(sessions[i].publish, f"states-c{i}.bin", data[i])
            await sessions[0].fetch(ref, [everyone[i]], 600)

        start = time.perf_counter()
        await asyncio.gather(*(gather_state(i) for i in range(1, clients)))
        model = sessions[0].publish("model.bin", data[0])
        await asyncio.gather(*(
            sessions[i].fetch(model, [a for a in everyone if a != everyone[i]], 600,
                              (i - 1, clients - 1)) for i in range(1, clients)))
        return time.perf_counter() - start
    finally:
        for session in sessions:
            session.close()


async def _grpc(clients: int, size: int, cap: int) -> float:
    token = secrets.token_hex(8)
    data = _payloads(clients, size)
    async with AsyncExitStack() as stack:
        aggregator, *others = await serve_sinks(stack, [Sink() for _ in range(clients)], token)
        up = [await stack.enter_async_context(PeerClient(0, aggregator, token, i, 600))
              for i in range(1, clients)]
        down = [await stack.enter_async_context(PeerClient(i + 1, address, token, 0, 600))
                for i, address in enumerate(others)]
        start = time.perf_counter()
        await asyncio.gather(*(c.put_model(Blob("states", 0, i + 1, data[i + 1]), 600,
                                           Pacer(cap).take if cap else None)
                               for i, c in enumerate(up)))
        shared = Pacer(cap).take if cap else None  # the aggregator's one uplink
        await asyncio.gather(*(c.put_model(Blob("model", 0, 0, data[0]), 600, shared)
                               for c in down))
        return time.perf_counter() - start


def exchange_rows(clients: int, size: int, cap: int, workdir: Path) -> list[dict[str, float]]:
    """Seconds per exchange, torrent and gRPC, without a cap and with every uplink at ``cap``."""
    rows = []
    for limit in (0, cap):
        torrent_s = asyncio.run(_torrent(clients, size, limit, workdir))
        grpc_s = asyncio.run(_grpc(clients, size, limit))
        rows.append({"cap": limit, "torrent_s": torrent_s, "grpc_s": grpc_s,
                     "ratio": torrent_s / grpc_s})
    return rows
