"""A test-only hook that makes this client a slower machine: ``SPLITNET_TEST_SLOWDOWN=k``.

``k`` is one factor, or one per client (``1,1,4,4,1``, picked by ``CLIENT_NUMBER``).

Used by ``splitnet bench placement`` to make some of the clients of one ``splitnet local`` run
slow. After each compute step that used ``t`` seconds of CPU, the client sleeps ``(k - 1) t``
(:func:`slow_down`), so a step takes ``k`` times as long, as on a machine whose compute is ``k``
times slower, and the CPU it does not use is left to the other clients: a slowed client sleeps
rather than steals (the earlier hook burned ``k t`` of CPU, which on a shared host slowed every
client). Messages (serialising, TLS, gRPC) are not slowed: the emulated machine is slower at
compute only, like one given fewer threads. A CPU quota (a cgroup with ``1/k`` of a core) was
measured and dropped: its throttling stalls every thread hand-off of a message for up to a
period, see BENCHMARKS.md. Unset or 1: no effect. Not a setting: a real cluster's machines are
as fast as they are.
"""

from __future__ import annotations

import functools
import math
import os
import time

from splitnet.errors import ConfigError, Violation

__all__ = ["ENV_KEY", "slow_down", "slowdown_factor"]

ENV_KEY = "SPLITNET_TEST_SLOWDOWN"
_RULE = "expected a factor >= 1, or one per client, e.g. 1,1,8,8,1"


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


@functools.cache
def _factor() -> float:
    return slowdown_factor()


def slow_down(step_cpu_seconds: float) -> float:
    """Sleep so that a step that used ``step_cpu_seconds`` takes the factor times that.

    Returns the CPU seconds the step would have used on the slower machine (the interpreter's
    step costs, which decide what it inlines, follow that machine). At factor 1 (unset) it
    neither sleeps nor changes the input.
    """
    factor = _factor()
    if factor > 1:
        time.sleep(step_cpu_seconds * (factor - 1))
    return step_cpu_seconds * factor
