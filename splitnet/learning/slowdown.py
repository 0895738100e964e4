"""A test-only hook that makes this client a slower machine: ``SPLITNET_TEST_SLOWDOWN=k``.

``k`` is one factor, or one per client (``1,1,4,4,1``, picked by ``CLIENT_NUMBER``).

Used by ``splitnet bench placement`` to make some of the clients of one ``splitnet local`` run
slow. After each step the client keeps computing (small matrix products) until the step has
used ``k`` times its own CPU time, so a step costs what it would on a machine ``k`` times slower;
nothing sleeps, and the result is unchanged. Unset or 1: no effect. Not a setting: a real
cluster's machines are as fast as they are.
"""

from __future__ import annotations

import functools
import math
import os
import time

import torch

__all__ = ["ENV_KEY", "burn", "slow_down", "slowdown_factor"]

ENV_KEY = "SPLITNET_TEST_SLOWDOWN"


def slowdown_factor() -> float:
    """Return this client's ``SPLITNET_TEST_SLOWDOWN`` (≥ 1); 1 when unset or not a number ≥ 1."""
    items = os.environ.get(ENV_KEY, "1").split(",")
    try:
        client = int(os.environ.get("CLIENT_NUMBER", "1"))
        if client < 1:
            return 1.0
        factor = float(items[client - 1] if len(items) > 1 else items[0])
    except (ValueError, IndexError):
        return 1.0
    return factor if math.isfinite(factor) and factor >= 1 else 1.0


_A = torch.ones(48, 48)


def burn(cpu_seconds: float) -> None:
    """Compute for ``cpu_seconds`` of this thread's CPU time."""
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        torch.mm(_A, _A)


@functools.cache
def _factor() -> float:
    return slowdown_factor()


def slow_down(step_cpu_seconds: float) -> float:
    """Make a step that used ``step_cpu_seconds`` cost the factor times that; return that cost.

    At factor 1 (unset) it does nothing and returns ``step_cpu_seconds``.
    """
    factor = _factor()
    if factor > 1:
        burn(step_cpu_seconds * (factor - 1))
    return step_cpu_seconds * factor
