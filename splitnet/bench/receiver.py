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
    asyncio.run(session.fetch(ref, peers, 600, shard))  # type: ignore[arg-type]
    print(f"done {time.time():.6f}", flush=True)
    sys.stdin.read()  # keep seeding for the others until the benchmark closes stdin
    session.close()


if __name__ == "__main__":
    main()
