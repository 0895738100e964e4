"""A test-only hook that makes this client a slower machine: ``SPLITNET_TEST_SLOWDOWN=k``.

``k`` is one factor, or one per client (``1,1,4,4,1``, picked by ``CLIENT_NUMBER``).

Used by ``splitnet bench placement`` to make some of the clients of one ``splitnet local`` run
slow. At start (:func:`enter_quota`), a client with ``k > 1`` puts its process into a cgroup of
its own whose CPU quota is ``1/k`` of one core (cgroup v1 ``cpu.cfs_quota_us`` /
``cpu.cfs_period_us``, or cgroup v2 ``cpu.max``), so everything it does (steps, serialising,
TLS) takes ``k`` times as long, and the time it does not get is left to the other clients: a
slowed client sleeps rather than steals. It leaves and removes its cgroup at exit; the bench
removes what a killed client left (:func:`remove_groups`). Needs root; where the cgroup cannot
be written the client stops with an error naming the hook. Unset or 1: no effect. Not a
setting: a real cluster's machines are as fast as they are.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
from pathlib import Path

from splitnet.errors import ConfigError, Violation

__all__ = ["ENV_KEY", "GROUP", "check_quota", "cgroup_root", "enter_quota", "quota_of",
           "remove_groups", "slow_down", "slowdown_factor"]

ENV_KEY = "SPLITNET_TEST_SLOWDOWN"
GROUP = "splitnet-test-slowdown"  # the folder, under the cpu controller, of the hook's cgroups
PERIOD_US = 10_000  # short, so a slowed step is throttled evenly rather than in 100 ms bursts
MIN_QUOTA_US = 1_000  # the kernel's smallest cfs quota
_RULE = "expected a factor >= 1, or one per client, e.g. 1,1,8,8,1"
_NEEDS = ("a CPU quota needs root and a writable cgroup cpu controller "
          "(/sys/fs/cgroup/cpu/cpu.cfs_quota_us, or cpu.max in cgroup v2)")


def _error(message: str) -> ConfigError:
    return ConfigError(Violation("setting", f"{ENV_KEY}: {message}"), "the environment")


def slowdown_factor() -> float:
    """Return this client's ``SPLITNET_TEST_SLOWDOWN`` (1 when unset).

    A value that is not a factor >= 1, or a list without this ``CLIENT_NUMBER``, is an error.
    """
    value = os.environ.get(ENV_KEY, "").strip()
    if not value:
        return 1.0
    items = value.split(",")
    client = os.environ.get("CLIENT_NUMBER", "1")
    if len(items) > 1 and not (client.isdigit() and 1 <= int(client) <= len(items)):
        raise _error(f"{value!r} lists {len(items)} factors, none for CLIENT_NUMBER={client}; "
                     f"{_RULE}")
    item = items[int(client) - 1] if len(items) > 1 else items[0]
    try:
        factor = float(item)
    except ValueError:
        raise _error(f"{item!r} is not a number; {_RULE}") from None
    if not (math.isfinite(factor) and factor >= 1):
        raise _error(f"{item} is not a factor >= 1; {_RULE}")
    return factor


def quota_of(factor: float) -> tuple[int, int]:
    """Return (quota, period) in microseconds giving ``1/factor`` of one core."""
    period = max(PERIOD_US, math.ceil(MIN_QUOTA_US * factor))
    return max(MIN_QUOTA_US, round(period / factor)), period


def cgroup_root() -> Path:
    """Return the cpu controller's root: cgroup v1's ``cpu`` folder, or the v2 root."""
    v1 = Path("/sys/fs/cgroup/cpu")
    return v1 if (v1 / "cpu.cfs_period_us").exists() else Path("/sys/fs/cgroup")


def _limit(group: Path, factor: float) -> None:
    quota, period = quota_of(factor)
    if (group / "cpu.cfs_quota_us").exists():
        (group / "cpu.cfs_period_us").write_text(f"{period}\n")
        (group / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    else:
        (group / "cpu.max").write_text(f"{quota} {period}\n")


def enter_quota(root: Path | None = None) -> Path | None:
    """Put this process into a cgroup with 1/k of one core; return it (None at k = 1).

    Raises ConfigError naming the hook when the cgroup cannot be made (not root, no cpu
    controller). The process leaves and removes the cgroup at exit.
    """
    factor = slowdown_factor()
    if factor == 1:
        return None
    root = root or cgroup_root()
    client = os.environ.get("CLIENT_NUMBER", "1")
    group = root / GROUP / f"client{client}-{os.getpid()}"
    try:
        group.mkdir(parents=True)
        _limit(group, factor)
        (group / "cgroup.procs").write_text(f"{os.getpid()}\n")
    except OSError as exc:
        raise _error(f"cannot slow client {client} {factor:g}x with a CPU quota in {group} "
                     f"({exc.strerror or exc}): {_NEEDS}") from None
    atexit.register(_leave, root, group)
    return group


def _leave(root: Path, group: Path) -> None:
    try:
        (root / "cgroup.procs").write_text(f"{os.getpid()}\n")
        group.rmdir()
    except OSError:
        pass  # best effort at exit: the bench's remove_groups() takes what is left


def remove_groups(root: Path | None = None) -> int:
    """Remove the hook's cgroups (their processes moved back to the root); return how many."""
    root = root or cgroup_root()
    folder = root / GROUP
    if not folder.is_dir():
        return 0
    removed = 0
    for group in sorted(p for p in folder.iterdir() if p.is_dir()):
        procs = group / "cgroup.procs"
        for pid in (procs.read_text().split() if procs.exists() else []):
            (root / "cgroup.procs").write_text(f"{pid}\n")
        group.rmdir()
        removed += 1
    folder.rmdir()
    return removed


def check_quota(root: Path | None = None) -> None:
    """Raise ConfigError naming the hook unless a cgroup with a CPU quota can be made here."""
    root = root or cgroup_root()
    probe = root / GROUP / f"probe-{os.getpid()}"
    try:
        probe.mkdir(parents=True)
        try:
            _limit(probe, 2.0)
        finally:
            probe.rmdir()
    except OSError as exc:
        raise _error(f"cannot make a cgroup in {probe.parent} ({exc.strerror or exc}): "
                     f"{_NEEDS}") from None


@functools.cache
def _factor() -> float:
    return slowdown_factor()


def slow_down(step_cpu_seconds: float) -> float:
    """Return the CPU seconds a step would have used on a machine ``k`` times slower.

    The quota makes the step take ``k`` times as long but not use more CPU; the interpreter's
    step costs (what it inlines) follow the slower machine's. At factor 1 it returns the input.
    """
    return step_cpu_seconds * _factor()
