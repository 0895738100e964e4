"""``splitnet bench transfer``: libtorrent against gRPC and raw TCP, in one run, as ratios.

1. Point to point on loopback: MiB/s of raw TCP, gRPC (our blob stream) and libtorrent (our
   session: publish, then fetch), each ÷ raw TCP from the same run.
2. Small tensors (activations): latency of one transfer by size, gRPC against libtorrent.
3. One to many: a publisher and N receiver processes, every upload capped at B by libtorrent's
   rate limiter; time until all N have the payload ÷ (S / B). The gRPC reference sends S from
   the publisher to each receiver with the publisher's uplink paced at B (ideal: N).
4. Round-end exchange of ResNet18 with 5 clients (``--resnet``): seconds per exchange with
   ``BULK_TRANSPORT=torrent``, ``auto`` (states inline, model by BitTorrent) and ``grpc``, from
   three ``splitnet local`` runs.
5. The round-end exchange pattern alone (``bench/exchange.py``), ResNet18-sized by default:
   torrent ÷ gRPC seconds, uncapped and with every uplink capped at B.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from splitnet.bench.exchange import exchange_rows
from splitnet.bench.sinks import Pacer, Sink, serve_sinks
from splitnet.errors import RuntimeFailure
from splitnet.telemetry.runs import run_folder_of
from splitnet.transport.client import PeerClient
from splitnet.transport.messages import Blob
from splitnet.transport.ports import free_ports
from splitnet.transport.torrent import TorrentSession

__all__ = ["run_transfer_bench"]

MIB = 1024 * 1024


def _raw_tcp(data: bytes) -> float:
    """Seconds to move ``data`` over one loopback TCP connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got = [0]

    def drain() -> None:
        conn, _ = server.accept()
        with conn:
            while got[0] < len(data):
                chunk = conn.recv(4 * MIB)
                if not chunk:
                    break
                got[0] += len(chunk)

    thread = threading.Thread(target=drain)
    thread.start()
    start = time.perf_counter()
    with socket.create_connection(server.getsockname()) as client:
        client.sendall(data)
    thread.join()
    server.close()
    return time.perf_counter() - start


async def _grpc_once(data: bytes) -> float:
    token = secrets.token_hex(8)
    async with AsyncExitStack() as stack:
        (address,) = await serve_sinks(stack, [Sink()], token)
        client = await stack.enter_async_context(PeerClient(1, address, token, 2, 600))
        await client.put_model(Blob("warm", 0, 2, b"x"))
        start = time.perf_counter()
        await client.put_model(Blob("bench", 0, 2, data))
        return time.perf_counter() - start


async def _torrent_once(data: bytes, workdir: Path) -> tuple[float, float]:
    """Return (publish + fetch seconds, fetch seconds)."""
    pub = TorrentSession(workdir / f"pub{time.time_ns()}")
    sub = TorrentSession(workdir / f"sub{time.time_ns()}")
    try:
        start = time.perf_counter()
        ref = pub.publish("bench.bin", data)
        fetch_start = time.perf_counter()
        await sub.fetch(ref, [("127.0.0.1", pub.port)], 600)
        end = time.perf_counter()
        return end - start, end - fetch_start
    finally:
        pub.close()
        sub.close()


def point_to_point(sizes_mib: list[int], workdir: Path) -> list[dict[str, float]]:
    """Measure MiB/s of raw TCP, gRPC and libtorrent for each size."""
    rows = []
    for size in sizes_mib:
        data = os.urandom(size * MIB)
        tcp = min(_raw_tcp(data) for _ in range(2))
        grpc_s = min(asyncio.run(_grpc_once(data)) for _ in range(2))
        both, fetch = min(asyncio.run(_torrent_once(data, workdir)) for _ in range(2))
        rows.append({"MiB": size, "tcp": size / tcp, "grpc": size / grpc_s,
                     "torrent_fetch": size / fetch, "torrent_end_to_end": size / both})
    return rows


def small_tensors(sizes_kib: list[int], workdir: Path) -> list[dict[str, float]]:
    """Measure one-transfer latency (ms) of gRPC and libtorrent for activation-sized payloads."""
    rows = []
    for kib in sizes_kib:
        data = os.urandom(kib * 1024)
        grpc_s = sorted(asyncio.run(_grpc_once(data)) for _ in range(5))[2]
        torrent_s = sorted(asyncio.run(_torrent_once(data, workdir))[0] for _ in range(3))[1]
        rows.append({"KiB": kib, "grpc_ms": grpc_s * 1e3, "torrent_ms": torrent_s * 1e3})
    return rows


def _spawn_receivers(n: int, cap: int, ref_file: Path, ports: list[int],
                     workdir: Path) -> list[subprocess.Popen[str]]:
    peers = ",".join(str(p) for p in ports)
    procs = []
    for i in range(n):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "splitnet.bench.receiver", "--workdir", str(workdir / f"r{i}"),
             "--port", str(ports[i + 1]), "--cap", str(cap), "--ref", str(ref_file),
             "--peers", peers, "--shard", f"{i},{n}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    return procs


def one_to_many_torrent(n: int, size: int, cap: int, workdir: Path) -> float:
    """Seconds until all ``n`` receiver processes have a ``size``-byte payload."""
    ports = free_ports(n + 1)
    pub = TorrentSession(workdir / f"pub{n}", "127.0.0.1", ports[0], upload_limit=cap)
    ref = pub.publish("payload.bin", os.urandom(size))
    ref_file = workdir / f"ref{n}.json"
    ref_file.write_text(json.dumps(ref.to_json()))
    procs = _spawn_receivers(n, cap, ref_file, ports, workdir)
    try:
        for proc in procs:
            assert proc.stdout is not None
            if not proc.stdout.readline().startswith("ready"):
                raise RuntimeFailure("a benchmark receiver did not start")
        start = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        done = []
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("done"):
                raise RuntimeFailure(f"a benchmark receiver failed: {line!r}")
            done.append(float(line.split()[1]))
        return max(done) - start
    finally:
        for proc in procs:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()
        pub.close()


async def _one_to_many_grpc(n: int, size: int, cap: int) -> float:
    token = secrets.token_hex(8)
    data = os.urandom(size)
    async with AsyncExitStack() as stack:
        addresses = await serve_sinks(stack, [Sink() for _ in range(n)], token)
        clients = [await stack.enter_async_context(PeerClient(1, address, token, 0, 600))
                   for address in addresses]
        pacer = Pacer(cap)
        start = time.perf_counter()
        await asyncio.gather(*(c.put_model(Blob("b", 0, 0, data), 600, pacer.take)
                               for c in clients))
        return time.perf_counter() - start


def one_to_many(receivers: list[int], size: int, cap: int, workdir: Path) -> list[dict[str, float]]:
    """Time for N receivers ÷ (S / B), libtorrent and gRPC, plus the calibration N=1."""
    ideal = size / cap
    single = one_to_many_torrent(1, size, cap, workdir)
    rows = [{"N": 1, "torrent_s": single, "torrent_ratio": single / ideal,
             "grpc_s": float("nan"), "grpc_ratio": float("nan")}]
    for n in receivers:
        torrent_s = one_to_many_torrent(n, size, cap, workdir)
        grpc_s = asyncio.run(_one_to_many_grpc(n, size, cap))
        rows.append({"N": n, "torrent_s": torrent_s, "torrent_ratio": torrent_s / ideal,
                     "grpc_s": grpc_s, "grpc_ratio": grpc_s / ideal})
    return rows


def resnet_exchange(workdir: Path) -> dict[str, Any]:
    """Run ResNet18 with 5 clients for 2 rounds with each bulk transport; seconds per exchange.

    ``auto`` (the default) sends the states inline and the model by BitTorrent (Note: one
    receiver goes inline, in transport/bulk.py); ``torrent`` sends both by BitTorrent.
    """
    from splitnet.plan.generate import generate_lists

    lists = generate_lists(5, 10, None, {})
    out: dict[str, Any] = {}
    for bulk in ("torrent", "auto", "grpc"):
        results = workdir / f"resnet-{bulk}"
        env = workdir / f"resnet-{bulk}.env"
        env.write_text("\n".join([
            "CURRENT_MODEL=RESNET18", "CURRENT_DATASET=SYNTHETIC", "BATCH_SIZE=64",
            "TRAINING_NUM_ROUNDS=2", "TRAINING_NUM_EPOCHS=1", "LEARNING_RATE=0.01",
            f"SIMULATION_STAGES_CLIENTS={json.dumps(lists)}", f"BULK_TRANSPORT={bulk}",
            f"RESULTS_DIR={results}", "PEER_TIMEOUT=300", "JOIN_TIMEOUT=120"]) + "\n")
        done = subprocess.run([sys.executable, "-m", "splitnet", "local", "--env-file", str(env)],
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeFailure(f"ResNet18 run with {bulk} failed: {done.stdout[-800:]}")
        summary = json.loads((run_folder_of(results) / "summary.json").read_text())
        out[bulk] = summary["exchange_seconds"]
    return out


def run_transfer_bench(sizes: list[int], receivers: list[int], payload_mib: int, cap_mib: float,
                       resnet: bool, exchange_mib: int = 45) -> str:
    """Run every part and return the report as Markdown (``exchange_mib`` 0: skip part 5)."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="splitnet-bench-") as tmp:
        workdir = Path(tmp)
        lines += ["### 1. Point to point on loopback (MiB/s; ratio to raw TCP in the same run)",
                  "", "| payload | raw TCP | gRPC | libtorrent fetch | libtorrent publish+fetch |",
                  "|---|---|---|---|---|"]
        for r in point_to_point(sizes, workdir):
            tcp = r["tcp"]
            lines.append(
                f"| {r['MiB']} MiB | {tcp:.0f} | {r['grpc']:.0f} ({r['grpc'] / tcp:.2f}x) | "
                f"{r['torrent_fetch']:.0f} ({r['torrent_fetch'] / tcp:.2f}x) | "
                f"{r['torrent_end_to_end']:.0f} ({r['torrent_end_to_end'] / tcp:.2f}x) |")
        lines += ["", "### 2. Activation-sized transfers (latency of one transfer, ms)", "",
                  "| tensor | gRPC | libtorrent | libtorrent ÷ gRPC |", "|---|---|---|---|"]
        for r in small_tensors([16, 256, 4096], workdir):
            lines.append(f"| {r['KiB']} KiB | {r['grpc_ms']:.1f} | {r['torrent_ms']:.1f} | "
                         f"{r['torrent_ms'] / r['grpc_ms']:.0f}x |")
        cap = int(cap_mib * MIB)
        lines += ["", f"### 3. One to many: payload {payload_mib} MiB, every uplink capped at "
                  f"{cap_mib:g} MiB/s (time ÷ S/B)", "",
                  "| receivers | libtorrent s | libtorrent ÷ S/B | gRPC s | gRPC ÷ S/B |",
                  "|---|---|---|---|---|"]
        for r in one_to_many(receivers, payload_mib * MIB, cap, workdir):
            grpc_text = ("—", "—") if r["N"] == 1 else (f"{r['grpc_s']:.1f}",
                                                         f"{r['grpc_ratio']:.2f}")
            lines.append(f"| {r['N']} | {r['torrent_s']:.1f} | {r['torrent_ratio']:.2f} | "
                         f"{grpc_text[0]} | {grpc_text[1]} |")
        if resnet:
            exchange = resnet_exchange(workdir)
            lines += ["", "### 4. Round-end exchange, ResNet18, 5 clients (seconds per round: "
                      "states to the aggregator + averaged model back)", "",
                      "| BULK_TRANSPORT | exchange seconds per round |", "|---|---|"]
            for bulk, values in exchange.items():
                lines.append(f"| {bulk} | {', '.join(f'{v:.2f}' for v in values)} |")
        if exchange_mib:
            lines += ["", f"### 5. Round-end exchange pattern: 5 clients, {exchange_mib} MiB "
                      "states and model (seconds; torrent ÷ gRPC)", "",
                      "| uplinks | libtorrent s | gRPC s | libtorrent ÷ gRPC |",
                      "|---|---|---|---|"]
            for r in exchange_rows(5, exchange_mib * MIB, cap, workdir):
                uplinks = f"capped at {cap_mib:g} MiB/s" if r["cap"] else "uncapped"
                lines.append(f"| {uplinks} | {r['torrent_s']:.2f} | {r['grpc_s']:.2f} | "
                             f"{r['ratio']:.2f} |")
    return "\n".join(lines)

