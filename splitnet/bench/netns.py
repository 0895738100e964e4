"""The bench's private network namespaces: one per system run, its loopback the wire.

Every packet between two processes of a run crosses the namespace's ``lo`` once, so its
transmitted-bytes counter is the run's bytes on the wire (headers, control and heartbeats
included). ``--shaped`` puts ``tc`` on that loopback.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["loopback_bytes", "netns_available", "wrap"]


def netns_available() -> bool:
    """Return True when a fresh network namespace can be made here (root and ``unshare``)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    done = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"],
                          capture_output=True, check=False)
    return done.returncode == 0


def wrap(command: list[str], counters: Path, shaping: str | None) -> list[str]:
    """Run ``command`` in a new network namespace; write its loopback counters at the end."""
    setup = "ip link set lo up"
    if shaping:
        rate, _, delay = shaping.partition(",")
        setup += f" && tc qdisc add dev lo root handle 1: tbf rate {rate} burst 256kb latency 50ms"
        if delay:
            setup += f" && tc qdisc add dev lo parent 1:1 handle 10: netem delay {delay}"
    script = f'{setup} || exit 97; "$@"; rc=$?; cat /proc/net/dev > "{counters}"; exit $rc'
    return ["unshare", "--net", "sh", "-c", script, "sh", *command]


def loopback_bytes(counters: Path) -> int | None:
    """Return the bytes the namespace's loopback sent, from its saved ``/proc/net/dev``."""
    if not counters.exists():
        return None
    for line in counters.read_text().splitlines():
        name, _, fields = line.partition(":")
        if name.strip() == "lo":
            return int(fields.split()[8])  # transmitted bytes (every packet crosses lo once)
    return None
