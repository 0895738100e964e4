"""Measure what a :class:`~splitnet.ops.wan.Wan` applies: RTT, throughput, UDP loss.

``python -m splitnet.ops.wan_probe --wan delay=5ms --wan rate=50mbit`` puts two endpoints (1 and
2) in an emulated WAN, runs a probe server in endpoint 1 and a probe client in endpoint 2, and
prints what was asked beside what was measured: the RTT of a TCP ping-pong (median of small
messages, TCP_NODELAY), the throughput of one TCP bulk send (timed until the receiver confirms
the last byte) and the fraction of UDP datagrams lost (``measure`` can also time UDP echoes).
Independent of ``splitnet bench``.
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

from splitnet.config.costs import bytes_per_second
from splitnet.errors import EXIT_CONFIG, ConfigError
from splitnet.ops.wan import Link, Wan, parse_links, wan_unavailable
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
    udp_rtts_ms: list[float]
    """RTTs of a UDP echo: one packet each way, so no TCP ACK queues ahead of it in the relay."""

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
            data, sender = udp.recvfrom(2048)
            if data[:1] == b"E":
                udp.sendto(data, sender)
            else:
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


def _udp_pings(host: str, port: int, pings: int) -> list[float]:
    """RTTs of up to ``pings`` UDP echoes, one at a time (a lost one is retried, 3 x at most)."""
    rtts: list[float] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(1.0)
        udp.connect((host, port))
        for sent in range(3 * pings):
            if len(rtts) == pings:
                break
            tag = b"E" + struct.pack("!Q", sent)  # a late echo never matches a later send
            start = time.perf_counter()
            udp.send(tag)
            with contextlib.suppress(TimeoutError):
                while udp.recv(64) != tag:
                    pass
                rtts.append((time.perf_counter() - start) * 1000)
            time.sleep(0.005)
    return rtts


def _client(host: str, port: int, pings: int, size: int, datagrams: int,
            udp_pings: int) -> dict[str, object]:
    """Probe: ping-pong, UDP echoes, then a bulk send, then UDP datagrams; return the figures."""
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
    udp_rtts = _udp_pings(host, port, udp_pings)
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
            "udp_received": received, "udp_rtts_ms": udp_rtts}


def measure(links: dict[int, Link], pings: int = 30, size: int = 0, datagrams: int = 0,
            seed: int = 0, udp_pings: int = 0) -> Probe:
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
                 f"--datagrams={datagrams}", f"--udp-pings={udp_pings}"],
                capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"the probe client failed: {done.stderr.strip()}")
            return Probe(**json.loads(done.stdout))
        finally:
            server.kill()
            server.communicate()


PROG = "python -m splitnet.ops.wan_probe"


def _count_problems(args: argparse.Namespace) -> list[str]:
    """Every count flag out of its range, each naming the flag, its value and the rule."""
    problems = []
    if args.pings < 1:
        problems.append(f"--pings {args.pings}: expected at least 1 (the RTT is their median)")
    if args.size is not None and not 0 <= args.size < 1 << 64:
        problems.append(f"--size {args.size}: expected a number of bytes from 0 (no bulk "
                        "send) to 2^64 - 1")
    if args.datagrams < 0:
        problems.append(f"--datagrams {args.datagrams}: expected a number ≥ 0 (0: no loss "
                        "measured)")
    if args.udp_pings < 0:
        problems.append(f"--udp-pings {args.udp_pings}: expected a number ≥ 0")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Print asked vs measured RTT, throughput and loss for the ``--wan`` specs given.

    A bad flag or ``--wan`` spec, or a machine that cannot emulate a WAN, is a message on
    stderr naming it and exit 2 (as ``splitnet local --wan``), before anything is set up.
    """
    parser = argparse.ArgumentParser(prog=PROG)
    parser.add_argument("--wan", action="append", default=[], metavar="SPEC",
                        help="the link of both endpoints, as splitnet local --wan: "
                             "'delay=10ms,jitter=1ms,loss=0.5%%,rate=100mbit', or 'K:...' for "
                             "endpoint K (1 or 2) only (repeatable; default: none, no delay)")
    parser.add_argument("--serve", metavar="HOST", help=argparse.SUPPRESS)
    parser.add_argument("--client", metavar="HOST", help=argparse.SUPPRESS)
    parser.add_argument("--pings", type=int, default=30,
                        help="TCP ping-pongs whose median is the RTT (default 30)")
    parser.add_argument("--size", type=int, default=None,
                        help="bytes of the bulk send that measures throughput (default: ~3 s "
                             "at the asked rate, 200 MB without one; 0: no bulk send)")
    parser.add_argument("--datagrams", type=int, default=2000,
                        help="UDP datagrams whose loss is measured (default 2000; 0: none)")
    parser.add_argument("--udp-pings", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if problems := _count_problems(args):
        print(f"{PROG}: {'; '.join(problems)}", file=sys.stderr)
        return EXIT_CONFIG
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
                                 args.datagrams, args.udp_pings)))
        return 0
    try:
        links = parse_links(args.wan, 2)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    if why := wan_unavailable():
        print(f"{PROG}: {why}", file=sys.stderr)
        return EXIT_CONFIG
    rate = links[2].rate
    size = args.size if args.size is not None else (
        max(int(bytes_per_second(rate) * 3), 1) if rate else 200_000_000)  # ~3 s at it
    probe = measure(links, args.pings, size, args.datagrams)
    asked = links[1].delay_ms + links[2].delay_ms
    print(f"RTT        asked {asked:8.2f} ms    measured {probe.rtt_ms:8.2f} ms (median of "
          f"{len(probe.rtts_ms)}, spread {min(probe.rtts_ms):.2f}..{max(probe.rtts_ms):.2f})")
    print(f"throughput asked {rate or 'unlimited':>11}    measured "
          + (f"{probe.throughput_mbit:8.1f} mbit/s ({size} bytes)" if size else
             "nothing (--size 0)"))
    print(f"UDP loss   asked {links[2].loss:8.2%}       measured {probe.udp_loss:8.2%} "
          f"({probe.udp_sent - probe.udp_received} of {probe.udp_sent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
