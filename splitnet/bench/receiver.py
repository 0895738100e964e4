"""One-to-many benchmark receiver: one process, one libtorrent session, one fetch.

Protocol on stdin/stdout: prints ``ready PORT``; on a ``go`` line fetches the reference named by
``--ref`` from ``--peers`` and prints ``done WALLTIME``; keeps seeding until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from splitnet.transport.torrent import TorrentRef, TorrentSession


async def _fetched_at(session: TorrentSession, ref: TorrentRef, peers: list[tuple[str, int]],
                      shard: tuple[int, ...] | None) -> float:
    """Fetch; return the wall time the verified payload was in hand.

    Note: stamp inside the loop. The payload is not handed out of ``asyncio.run``: returning a
    64 MiB bytes object from it costs ~0.9 s at the loop's shutdown here (measured: fetched at
    4.24 s, ``asyncio.run`` returned at 5.10 s for 32 MiB), which the receiver used to count.
    """
    await session.fetch(ref, peers, 600, shard)  # type: ignore[arg-type]
    return time.time()


def main() -> None:
    """Run one receiver."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cap", type=int, default=0, help="upload cap, bytes/s")
    parser.add_argument("--ref", type=Path, required=True)
    parser.add_argument("--peers", required=True, help="comma-separated ports on 127.0.0.1")
    parser.add_argument("--shard", default="", help="i,n: receiver i of n (Note: shard first)")
    args = parser.parse_args()
    session = TorrentSession(args.workdir, "127.0.0.1", args.port, upload_limit=args.cap)
    print(f"ready {session.port}", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    ref = TorrentRef.from_json(json.loads(args.ref.read_text()))
    peers = [("127.0.0.1", int(p)) for p in args.peers.split(",") if int(p) != session.port]
    shard = tuple(int(x) for x in args.shard.split(",")) if args.shard else None
    print(f"done {asyncio.run(_fetched_at(session, ref, peers, shard)):.6f}", flush=True)
    sys.stdin.read()  # keep seeding for the others until the benchmark closes stdin
    session.close()


if __name__ == "__main__":
    main()
