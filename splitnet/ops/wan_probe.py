"""Measure what a :class:`~splitnet.ops.wan.Wan` applies: RTT, throughput, UDP loss.

``python -m splitnet.ops.wan_probe --wan delay=5ms --wan rate=50mbit`` puts two endpoints (1 and
2) in an emulated WAN, runs a probe server in endpoint 1 and a probe client in endpoint 2, and
prints what was asked beside what was measured: the RTT of a TCP ping-pong (median of small
messages, TCP_NODELAY), the throughput of one TCP bulk send (timed until the receiver confirms
the last byte) and the fraction of UDP datagrams lost. Independent of ``splitnet bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from splitnet.ops.wan import Link, Wan, parse_links
from splitnet.ops.wan_relay import RT_PRIORITY

__all__ = ["Probe", "measure", "main"]

PORT = 7700
PING_SIZE = 64


@dataclass(frozen=True)
class Probe:
    """What one probe run measured between endpoint 2 (client) and endpoint 1 (server)."""

    rtts_ms: list[float]
    throughput_mbit: float
    udp_sent: int
    udp_received: int

    @property
    def rtt_ms(self) -> float:
        """Median RTT of the TCP ping-pong."""
        return statistics.median(self.rtts_ms)

    @property
    def udp_loss(self) -> float:
        """Fraction of the client's UDP datagrams that never arrived."""
        return 1 - self.udp_received / self.udp_sent if self.udp_sent else 0.0


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("probe peer closed the connection")
        data += chunk
    return bytes(data)


def _serve(host: str, port: int) -> None:
    """Serve probes: TCP ``P`` echo, ``T`` sink, ``U`` UDP count; UDP datagrams counted."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)  # only the relay may drop
    udp.bind((host, port))
    count = [0]

    def count_udp() -> None:
        while True:
            udp.recv(2048)
            count[0] += 1

    threading.Thread(target=count_udp, daemon=True).start()
    listener = socket.create_server((host, port))
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            mode = _recv_exact(conn, 1)
            if mode == b"P":
                while msg := conn.recv(PING_SIZE):
                    conn.sendall(msg)
            elif mode == b"T":
                (size,) = struct.unpack("!Q", _recv_exact(conn, 8))
                while size > 0:
                    size -= len(conn.recv(min(size, 1 << 20)))
                conn.sendall(b"k")
            elif mode == b"U":
                time.sleep(1.0)  # the last datagrams still in flight
                conn.sendall(struct.pack("!Q", count[0]))


def _client(host: str, port: int, pings: int, size: int, datagrams: int) -> dict[str, object]:
    """Probe: ping-pong, then a bulk send, then UDP datagrams; return the figures."""
    rtts = []
    with socket.create_connection((host, port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(b"P")
        for _ in range(pings + 3):  # the first three warm the path up
            start = time.perf_counter()
            conn.sendall(b"x" * PING_SIZE)
            _recv_exact(conn, PING_SIZE)
            rtts.append((time.perf_counter() - start) * 1000)
            time.sleep(0.005)
    throughput = 0.0
    if size:
        with socket.create_connection((host, port)) as conn:
            start = time.perf_counter()
            conn.sendall(b"T" + struct.pack("!Q", size))
            block = b"\0" * (1 << 20)
            left = size
            while left > 0:
                left -= conn.send(block[:min(left, len(block))])
            _recv_exact(conn, 1)
            throughput = size * 8 / (time.perf_counter() - start) / 1e6
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(datagrams):
        udp.sendto(struct.pack("!Q", i) * 8, (host, port))
        if i % 10 == 9:
            time.sleep(0.001)  # stay far below any queue limit: only the relay drops
    received = 0
    if datagrams:
        with socket.create_connection((host, port)) as conn:
            conn.sendall(b"U")
            (received,) = struct.unpack("!Q", _recv_exact(conn, 8))
    return {"rtts_ms": rtts[3:], "throughput_mbit": throughput, "udp_sent": datagrams,
            "udp_received": received}


def measure(links: dict[int, Link], pings: int = 30, size: int = 0, datagrams: int = 0,
            seed: int = 0) -> Probe:
    """Emulate ``links`` for endpoints 1 and 2 and probe from 2 to 1; see the module doc."""
    with Wan(links, [1, 2], seed=seed) as wan:
        server = subprocess.Popen(
            [*wan.prefix(1), sys.executable, "-m", "splitnet.ops.wan_probe", "--serve",
             wan.address(1)], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise RuntimeError("the probe server did not start")
            done = subprocess.run(
                [*wan.prefix(2), sys.executable, "-m", "splitnet.ops.wan_probe", "--client",
                 wan.address(1), f"--pings={pings}", f"--size={size}",
                 f"--datagrams={datagrams}"], capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"the probe client failed: {done.stderr.strip()}")
            return Probe(**json.loads(done.stdout))
        finally:
            server.kill()
            server.communicate()


def _rate_mbit(rate: str) -> float:
    units = {"bit": 1e-6, "kbit": 1e-3, "mbit": 1.0, "gbit": 1e3, "tbit": 1e6,
             "bps": 8e-6, "kbps": 8e-3, "mbps": 8.0, "gbps": 8e3, "tbps": 8e6}
    number = rate.rstrip("kmgtbpsi")
    return float(number) * units[rate[len(number):]]


def main(argv: list[str] | None = None) -> int:
    """Print asked vs measured RTT, throughput and loss for the ``--wan`` specs given."""
    parser = argparse.ArgumentParser(prog="python -m splitnet.ops.wan_probe")
    parser.add_argument("--wan", action="append", default=[], metavar="SPEC")
    parser.add_argument("--serve", metavar="HOST", help=argparse.SUPPRESS)
    parser.add_argument("--client", metavar="HOST", help=argparse.SUPPRESS)
    parser.add_argument("--pings", type=int, default=30)
    parser.add_argument("--size", type=int, default=None, help="bytes of the bulk send")
    parser.add_argument("--datagrams", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.serve or args.client:
        # Note: measure the network, not the CPU. Real-time priority, as the relay has, so that a
        # busy machine's scheduling does not count as RTT (ping's echo is the kernel's, too).
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    if args.serve:
        _serve(args.serve, PORT)
        return 0
    if args.client:
        print(json.dumps(_client(args.client, PORT, args.pings, args.size or 0,
                                 args.datagrams)))
        return 0
    links = parse_links(args.wan, 2)
    rate = links[2].rate
    size = args.size if args.size is not None else (
        int(_rate_mbit(rate) * 1e6 / 8 * 3) if rate else 200_000_000)  # ~3 s at the rate
    probe = measure(links, args.pings, size, args.datagrams)
    asked = links[1].delay_ms + links[2].delay_ms
    print(f"RTT        asked {asked:8.2f} ms    measured {probe.rtt_ms:8.2f} ms (median of "
          f"{len(probe.rtts_ms)}, spread {min(probe.rtts_ms):.2f}..{max(probe.rtts_ms):.2f})")
    print(f"throughput asked {rate or 'unlimited':>11}    measured "
          f"{probe.throughput_mbit:8.1f} mbit/s ({size} bytes)")
    print(f"UDP loss   asked {links[2].loss:8.2%}       measured {probe.udp_loss:8.2%} "
          f"({probe.udp_sent - probe.udp_received} of {probe.udp_sent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
