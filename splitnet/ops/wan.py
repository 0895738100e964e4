"""WAN emulation on one machine without ``netem``: per-endpoint delay, jitter, loss and rate.

Each endpoint k runs in its own network namespace, joined by a veth pair (MTU 65000, few
packets) to a router namespace: the endpoint is 10.77.k.2, the router 10.77.k.1. In the router,
policy routing (``ip rule add iif wK lookup 100``, table 100 ``default dev tun0``) sends every
packet an endpoint forwards into a TUN device, where :mod:`splitnet.ops.wan_relay` holds it for
its sender's one-way delay (± jitter), drops a ``loss`` fraction and writes it back; the kernel
then forwards it; an endpoint with neither delay, jitter nor loss bypasses the relay (Note: no
relay for a plain link). ``rate`` is a ``tbf`` qdisc on the endpoint's own egress. Every
connection is treated alike (gRPC, the direct channel, BitTorrent): nothing in splitnet needs to
know.

RTT between endpoints a and b = delay(a) + delay(b), as netem on both interfaces would give.
Where ``netem`` exists, the container entrypoint's ``tc netem`` path applies instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import TracebackType

from splitnet.errors import ConfigError, RuntimeFailure, Violation
from splitnet.ops.wan_relay import RelayLink

__all__ = ["Link", "Wan", "check_rate", "parse_links", "rtt_links", "wan_unavailable"]

MTU = 65000
TUN_QUEUE = 10000  # packets the kernel queues for the relay (default 500) before dropping
_COUNTER = itertools.count()


@dataclass(frozen=True)
class Link:
    """One endpoint's egress, like netem on its interface."""

    delay_ms: float = 0.0
    """One-way delay added to every packet this endpoint sends."""
    jitter_ms: float = 0.0
    """Uniform ± jitter on that delay, per packet (one endpoint's packets keep their order)."""
    loss: float = 0.0
    """Fraction 0..1 of this endpoint's packets dropped."""
    rate: str | None = None
    """tc rate of its egress, e.g. ``"100mbit"`` (tbf)."""

    def __str__(self) -> str:
        parts = [f"delay {self.delay_ms:g} ms" + (f" ± {self.jitter_ms:g} ms" if self.jitter_ms
                                                  else "")]
        parts += [f"loss {self.loss:.2%}"] if self.loss else []
        parts += [f"rate {self.rate}"] if self.rate else []
        return ", ".join(parts)


_SPEC = re.compile(r"(?:(?P<k>[0-9]+):)?(?P<body>.*)", re.DOTALL)  # ASCII digits only
_TIME = re.compile(r"(?P<n>-?[0-9]+(?:\.[0-9]+)?)(?P<unit>us|ms|s)")
_LOSS = re.compile(r"(?P<n>-?[0-9]+(?:\.[0-9]+)?)(?P<pct>%?)")
_RATE = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)(?P<unit>[kmgt]?(?:bit|bps))")
_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_FORM = "expected 'delay=10ms,jitter=1ms,loss=0.5%,rate=100mbit' or 'K:delay=40ms'"


def check_rate(text: str) -> str:
    """Return the tc rate ``text`` in lower case; raise ValueError if it is not a positive one."""
    m = _RATE.fullmatch(text.lower())
    if not m or float(m["n"]) <= 0:
        raise ValueError(f"rate '{text}': expected a positive tc rate, e.g. 100mbit, 5mbps")
    return text.lower()


def _value(spec: str, key: str, text: str) -> float | str:
    """One ``key=text`` of ``spec``, checked; raises ValueError with the rule broken."""
    if key in ("delay", "jitter"):
        m = _TIME.fullmatch(text)
        if not m:
            raise ValueError(f"{key} '{text}': expected a time with a unit, e.g. 10ms, 500us, 1s")
        ms = float(m["n"]) * _TO_MS[m["unit"]]
        if ms < 0:
            raise ValueError(f"{key} '{text}': must not be negative")
        return ms
    if key == "loss":
        m = _LOSS.fullmatch(text)
        if not m:
            raise ValueError(f"loss '{text}': expected a percentage (0.5%) or a fraction (0.005)")
        loss = float(m["n"]) / (100 if m["pct"] else 1)
        if not 0 <= loss <= 1:
            raise ValueError(f"loss '{text}': must be between 0 and 100%")
        if not m["pct"] and loss >= 1:  # NETWORK_LOSS=1 is one percent: never read 1 as all
            raise ValueError(f"loss '{text}': a fraction must be below 1; write {text}% for "
                             f"{text} percent, or 100% to drop every packet")
        return loss
    if key == "rate":
        return check_rate(text)
    raise ValueError(f"unknown key '{key}': expected delay, jitter, loss or rate")


def parse_links(specs: list[str], endpoints: int) -> dict[int, Link]:
    """Parse ``--wan`` specs into one :class:`Link` per endpoint 0..``endpoints``.

    A spec without ``K:`` applies to every endpoint; ``K:...`` to endpoint K only, overriding
    the keys it names, whatever the order of the specs. Endpoint 0 is a server's (free in
    ``splitnet local``, whose clients are 1..N). A spec naming no setting (``0:``), and every bad
    value, is reported at once (ConfigError naming the spec and the rule).
    """
    names = {"delay": "delay_ms", "jitter": "jitter_ms", "loss": "loss", "rate": "rate"}
    common: dict[str, float | str] = {}
    own: dict[int, dict[str, float | str]] = {}
    problems = []
    seen: set[tuple[int | None, str]] = set()  # (endpoint or None for all, key)
    for spec in specs:
        m = _SPEC.fullmatch(spec.strip())
        assert m is not None  # the body matches anything
        k = int(m["k"]) if m["k"] is not None else None
        target = common if k is None else own.setdefault(k, {})
        if k is not None and k > endpoints:
            problems.append(Violation("wan", f"--wan '{spec}': endpoint {k} does not exist "
                                             f"(0..{endpoints})"))
        for item in [x for x in m["body"].split(",") if x.strip()] or [""]:  # '' if none
            raw_key, sep, text = item.partition("=")
            key = raw_key.strip()
            try:
                if not sep:
                    raise ValueError(f"'{item}': {_FORM}" if item else f"no setting; {_FORM}")
                if (k, key) in seen:
                    raise ValueError(f"{key} is given twice for "
                                     f"{'every endpoint' if k is None else f'endpoint {k}'}; "
                                     "give each key once")
                seen.add((k, key))
                target[names.get(key, key)] = _value(spec, key, text.strip())
            except ValueError as exc:
                problems.append(Violation("wan", f"--wan '{spec}': {exc}"))
    if problems:
        raise ConfigError(problems, "the command line")
    base = Link(**common)  # type: ignore[arg-type]
    return {k: replace(base, **own.get(k, {})) for k in range(endpoints + 1)}  # type: ignore[arg-type]


def rtt_links(rtt_ms: float, endpoints: int, rate: str | None = None) -> dict[int, Link]:
    """Links for endpoints 0..``endpoints`` such that any two see ``rtt_ms`` (delay rtt/2 each)."""
    if rtt_ms < 0:
        raise ConfigError(Violation("wan", f"RTT {rtt_ms} ms: must not be negative"),
                          "the command line")
    if rate is not None:
        _value(f"rate={rate}", "rate", rate)
    return {k: Link(delay_ms=rtt_ms / 2, rate=rate) for k in range(endpoints + 1)}


def wan_unavailable() -> str | None:
    """None when this machine can emulate a WAN, else a sentence saying why not."""
    if not sys.platform.startswith("linux"):
        return "WAN emulation needs Linux (network namespaces)"
    if os.geteuid() != 0:
        return "WAN emulation needs root (it creates network namespaces); run as root or drop --wan"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"WAN emulation needs the '{tool}' command (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "WAN emulation needs /dev/net/tun (a TUN device for the delay relay)"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeFailure(f"WAN emulation: 'ip {' '.join(args)}' failed: "
                             f"{done.stderr.strip()}")


class Wan:
    """A context manager: endpoints in namespaces, the relay running; all removed on exit.

    ``links`` for endpoints not in ``endpoints`` are ignored; an endpoint without a link gets
    none (no delay). Names carry the pid and a counter, so parallel instances never collide.
    """

    def __init__(self, links: dict[int, Link], endpoints: Iterable[int], seed: int = 0) -> None:
        self.endpoints = sorted(set(endpoints))
        if not all(0 <= k <= 254 for k in self.endpoints):
            raise ConfigError(Violation("wan", f"endpoints {self.endpoints}: expected 0..254"),
                              "the WAN emulation")
        self.links = {k: links.get(k, Link()) for k in self.endpoints}
        self.seed = seed
        tag = f"snwan{os.getpid()}-{next(_COUNTER)}"
        self.router = f"{tag}-r"
        self.names = {k: f"{tag}-{k}" for k in self.endpoints}
        self.relay: subprocess.Popen[str] | None = None
        self.made: list[str] = []

    def address(self, k: int) -> str:
        """IPv4 address of endpoint ``k`` (bind to it or connect to it)."""
        return f"10.77.{k}.2"

    def prefix(self, k: int) -> list[str]:
        """Command prefix that runs a process inside endpoint ``k``'s namespace."""
        return ["ip", "netns", "exec", self.names[k]]

    def __enter__(self) -> Wan:
        try:
            self._up()
        except BaseException:
            self._down()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._down()

    def _netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _up(self) -> None:
        r = self.router
        self._netns(r)
        _sysctl(r, {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
                    "net.ipv4.conf.default.rp_filter": "0"})
        _ip("-n", r, "tuntap", "add", "dev", "tun0", "mode", "tun")
        _ip("-n", r, "link", "set", "tun0", "mtu", str(MTU), "txqueuelen", str(TUN_QUEUE), "up")
        _ip("-n", r, "route", "add", "default", "dev", "tun0", "table", "100")
        for k in self.endpoints:
            e, veth = self.names[k], f"w{k}"
            self._netns(e)
            _ip("-n", r, "link", "add", veth, "mtu", str(MTU), "type", "veth", "peer", "name",
                "eth0", "mtu", str(MTU), "netns", e)
            _ip("-n", r, "addr", "add", f"10.77.{k}.1/24", "dev", veth)
            _ip("-n", r, "link", "set", veth, "up")
            if self._relayed(k):  # Note: no relay for a plain link (veth forwarding alone).
                _ip("-n", r, "rule", "add", "iif", veth, "lookup", "100", "priority", "100")
            _ip("-n", e, "addr", "add", f"{self.address(k)}/24", "dev", "eth0")
            _ip("-n", e, "link", "set", "eth0", "up")
            _ip("-n", e, "route", "add", "default", "via", f"10.77.{k}.1")
            if self.links[k].rate:
                _tbf(e, self.links[k].rate or "", self._queue_ms())
        if any(map(self._relayed, self.endpoints)):
            self._start_relay()

    def _queue_ms(self) -> float:
        # Note: tbf queue. At least the longest RTT of the emulated network (a buffer of one
        # bandwidth-delay product, as a WAN router has), else TCP never fills the rate at high RTT.
        worst = max(x.delay_ms + x.jitter_ms for x in self.links.values())
        return max(50.0, 2 * worst + 10)

    def _relayed(self, k: int) -> bool:
        link = self.links[k]
        return bool(link.delay_ms or link.jitter_ms or link.loss)

    def _start_relay(self) -> None:
        args = [f"--link={RelayLink(x.delay_ms / 1000, x.jitter_ms / 1000, x.loss).format(k)}"
                for k, x in self.links.items() if x.delay_ms or x.jitter_ms or x.loss]
        self.relay = subprocess.Popen(
            ["ip", "netns", "exec", self.router, sys.executable, "-m", "splitnet.ops.wan_relay",
             "--tun", "tun0", f"--seed={self.seed}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.relay.stdout is not None
        if self.relay.stdout.readline().strip() != "ready":
            self.relay.kill()
            _, err = self.relay.communicate()
            raise RuntimeFailure(f"WAN emulation: the relay did not start: {err.strip()}")

    def _down(self) -> None:
        if self.relay is not None:
            self.relay.kill()
            self.relay.communicate()
            self.relay = None
        for name in reversed(self.made):  # Note: leftovers. A process still in a namespace
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            for pid in pids.stdout.split():  # would keep it (and its veth) alive
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made.clear()


def _sysctl(ns: str, values: dict[str, str]) -> None:
    args = [f"{key}={value}" for key, value in values.items()]
    done = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeFailure(f"WAN emulation: sysctl in {ns} failed: {done.stderr.strip()}")


def _tbf(ns: str, rate: str, latency_ms: float) -> None:
    # Note: tbf burst. At least two 65000-byte packets, else tbf stalls on one big packet.
    done = subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "tbf",
                           "rate", rate, "burst", str(2 * MTU + 4096),
                           "latency", f"{latency_ms:g}ms"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeFailure(f"WAN emulation: tc tbf rate {rate} failed: {done.stderr.strip()}")

