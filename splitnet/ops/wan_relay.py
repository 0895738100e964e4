"""The packet relay of the WAN emulation: holds every packet for its sender's delay, drops some.

Run inside the router namespace of a :class:`splitnet.ops.wan.Wan` (``python -m
splitnet.ops.wan_relay --tun tun0 --link K:DELAY_S:JITTER_S:LOSS ...``). Policy routing sends
every packet an endpoint forwards into the TUN device; this process reads it, schedules it at
``arrival + delay ± jitter`` of its source endpoint (10.77.K.2), drops a ``loss`` fraction, and
writes it back to the TUN, from where the kernel forwards it to its destination. Standard library
only, so that it starts fast and needs nothing of splitnet.

Note: precise waits. A reader thread queues packets on a heap; a writer thread waits on a
condition until the earliest is due (``pthread_cond_timedwait``: tens of microseconds late, where
asyncio timers round to 1 ms, which alone is 10 % of a 10 ms RTT).

Note: per-source order. Jitter never reorders one endpoint's packets: a packet is released no
earlier than the previous one from the same source, as netem does for a rate-less queue, so TCP
sees delay variation, not reordering.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import heapq
import os
import random
import struct
import sys
import threading
import time
from dataclasses import dataclass

__all__ = ["RelayLink", "main", "open_tun"]

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
RT_PRIORITY = 20  # SCHED_FIFO, below the kernel's own threads (50)
READ_SIZE = 1 << 17  # larger than any MTU the emulation sets (65000)


@dataclass(frozen=True)
class RelayLink:
    """What the relay applies to one source endpoint's packets (seconds, fraction)."""

    delay: float
    jitter: float
    loss: float

    @classmethod
    def parse(cls, text: str) -> tuple[int, RelayLink]:
        """Parse ``K:DELAY_S:JITTER_S:LOSS`` as written by :func:`relay_args`.

        ``K`` = ``*`` is every source outside 10.77.0.0/16 (key -1): the Swarm lab's nodes
        (``scripts/swarm-lab.sh delay``) relay their own packets, whatever their address.
        """
        k, delay, jitter, loss = text.split(":")
        return (-1 if k == "*" else int(k)), cls(float(delay), float(jitter), float(loss))

    def format(self, k: int) -> str:
        """Return the ``--link`` argument for endpoint ``k``."""
        return f"{k}:{self.delay!r}:{self.jitter!r}:{self.loss!r}"


def open_tun(name: str) -> int:
    """Attach to the (persistent) TUN device ``name``; return its file descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Relay:
    """A reader thread that schedules packets and a writer thread that releases them on time."""

    def __init__(self, fd: int, links: dict[int, RelayLink], seed: int) -> None:
        self.fd = fd
        self.links = links
        self.rng = random.Random(seed)
        self.heap: list[tuple[float, int, bytes]] = []
        self.cond = threading.Condition()
        self.last: dict[int, float] = {}
        self.seq = 0

    def read_loop(self) -> None:
        """Read packets, drop or schedule each by its source endpoint's link."""
        none = RelayLink(0.0, 0.0, 0.0)
        while True:
            try:
                packet = os.read(self.fd, READ_SIZE)
            except OSError:
                packet = b""
            if not packet:  # the device (or a test's socket) is gone: stop both loops
                with self.cond:
                    heapq.heappush(self.heap, (0.0, 0, b""))
                    self.cond.notify()
                return
            now = time.monotonic()
            src = packet[12:16] if len(packet) >= 20 and packet[0] >> 4 == 4 else b""
            k = src[2] if src[:2] == b"\x0a\x4d" else -1  # 10.77.K.x, else '*'
            link = self.links.get(k, none)
            if link.loss and self.rng.random() < link.loss:
                continue
            due = now + link.delay
            if link.jitter:
                due = max(now, due + self.rng.uniform(-link.jitter, link.jitter))
            due = max(due, self.last.get(k, 0.0))  # Note: per-source order
            self.last[k] = due
            with self.cond:
                self.seq += 1
                heapq.heappush(self.heap, (due, self.seq, packet))
                if self.heap[0][1] == self.seq:
                    self.cond.notify()

    def write_loop(self) -> None:
        """Write each packet back to the TUN when it is due (Note: precise waits)."""
        while True:
            with self.cond:
                while not self.heap:
                    self.cond.wait()
                wait = self.heap[0][0] - time.monotonic()
                if wait > 0:
                    self.cond.wait(wait)
                    continue
                packet = heapq.heappop(self.heap)[2]
            if not packet:
                return
            with contextlib.suppress(OSError):  # no route (endpoint gone): drop, as a router does
                os.write(self.fd, packet)


def main(argv: list[str] | None = None) -> int:
    """Attach to the TUN, print ``ready``, relay until killed."""
    parser = argparse.ArgumentParser(prog="python -m splitnet.ops.wan_relay")
    parser.add_argument("--tun", required=True)
    parser.add_argument("--link", action="append", default=[], metavar="K:DELAY:JITTER:LOSS")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    links = dict(RelayLink.parse(text) for text in args.link)
    relay = Relay(open_tun(args.tun), links, args.seed)
    # Note: the network is not the workload. Real-time priority (inherited by both threads) keeps
    # the relay's wakes prompt on a machine whose cores the emulated clients keep busy.
    with contextlib.suppress(OSError):  # not permitted: ordinary priority, coarser delays
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    threads = [threading.Thread(target=relay.read_loop, daemon=True),
               threading.Thread(target=relay.write_loop, daemon=True)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
