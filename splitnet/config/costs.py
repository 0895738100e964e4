"""Parsers of the settings ``splitnet plan --auto`` predicts with: speeds, links and the RTT.

``CLIENT_SPEED``: each client's compute speed relative to the machine ``splitnet profile`` ran
on (1 = as fast), as a list (``[1,1,0.5,0.5,1]``) or one number for every client.
``CLIENT_BANDWIDTH``: each client's link as a tc rate, one (``100mbit``) or a list
(``[100mbit,10mbit,...]``, or comma-separated). ``CLIENT_RTT``: the round-trip time between two
clients (``20ms``). A list's length is checked against ``NUM_CLIENTS`` by
:func:`cost_violations`.
"""

from __future__ import annotations

import math
import re

from splitnet.config.parsing import plain_float
from splitnet.errors import Violation

__all__ = ["bandwidth_list", "bytes_per_second", "client_rtt", "cost_violations", "rtt_seconds",
           "speed_list"]

_RATE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps|tbps)")
_TIME_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s)")
_BITS = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}
_BYTES = {"bps": 1.0, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9, "tbps": 1e12}
MIN_SPEED = 1e-3
"""The slowest CLIENT_SPEED (and 1/MIN_SPEED the fastest): beyond, a prediction means nothing."""
MIN_BYTES_PER_SECOND = 125.0
"""The slowest CLIENT_BANDWIDTH: 1kbit."""
MAX_RTT_SECONDS = 60.0
"""The longest CLIENT_RTT."""
_SPEED_RULE = ("expected a positive finite number or a list of them, one per client, e.g. "
               "[1,1,0.5,0.5,1]")
_RATE_RULE = ("expected a tc rate or a list of them, one per client, e.g. 100mbit or "
              "[100mbit,10mbit,100mbit]")


def _items(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [item.strip().strip("'\"") for item in text.split(",")]


def speed_list(value: str) -> tuple[float, ...]:
    """Parse ``CLIENT_SPEED``: positive finite numbers (one, or one per client)."""
    speeds = []
    for item in _items(value):
        try:
            speed = plain_float(item)
        except ValueError:
            raise ValueError(f"{item!r} is not a number; {_SPEED_RULE}") from None
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"{item} is not a positive finite number; {_SPEED_RULE}")
        if not MIN_SPEED <= speed <= 1 / MIN_SPEED:
            raise ValueError(f"{item} is outside {MIN_SPEED:g}..{1 / MIN_SPEED:g} (a speed "
                             "relative to the profiled machine); " + _SPEED_RULE)
        speeds.append(speed)
    return tuple(speeds)


def bytes_per_second(rate: str) -> float:
    """Return a tc rate (``100mbit``, ``12.5mbps``) in bytes per second."""
    match = _RATE_RE.fullmatch(rate.strip().lower())
    if match is None:
        raise ValueError(f"{rate!r} is not a tc rate; {_RATE_RULE}")
    amount, unit = float(match.group(1)), match.group(2)
    result = amount * _BITS[unit] / 8 if unit in _BITS else amount * _BYTES[unit]
    if result <= 0:
        raise ValueError(f"{rate} is not a positive rate; {_RATE_RULE}")
    return result


def bandwidth_list(value: str) -> tuple[float, ...]:
    """Parse ``CLIENT_BANDWIDTH`` into bytes per second (one, or one per client), 1kbit up."""
    rates = []
    for item in _items(value):
        rate = bytes_per_second(item)
        if rate < MIN_BYTES_PER_SECOND:
            raise ValueError(f"{item} is below 1kbit, slower than any link a run could use; "
                             + _RATE_RULE)
        rates.append(rate)
    return tuple(rates)


def client_rtt(value: str) -> float:
    """Parse ``CLIENT_RTT`` (:func:`rtt_seconds`), at most :data:`MAX_RTT_SECONDS`."""
    seconds = rtt_seconds(value)
    if seconds > MAX_RTT_SECONDS:
        raise ValueError(f"{value.strip()} is over {MAX_RTT_SECONDS:g} s; expected at most "
                         f"{MAX_RTT_SECONDS:g}s, e.g. 20ms")
    return seconds


def rtt_seconds(value: str) -> float:
    """Parse ``CLIENT_RTT`` (``20ms``, ``500us``, ``0.1s``, or a bare ``0``) into seconds."""
    if value.strip() == "0":
        return 0.0
    match = _TIME_RE.fullmatch(value.strip().lower())
    if match is None:
        raise ValueError("expected a time with a unit, e.g. 20ms, 500us or 1s")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[match.group(2)]
    return float(match.group(1)) * scale


def cost_violations(speed: tuple[float, ...] | None, bandwidth: tuple[float, ...] | None,
                    num_clients: int) -> list[Violation]:
    """Return a violation for a ``CLIENT_SPEED`` / ``CLIENT_BANDWIDTH`` list of the wrong length."""
    violations = []
    for key, values in (("CLIENT_SPEED", speed), ("CLIENT_BANDWIDTH", bandwidth)):
        if values is not None and len(values) not in (1, num_clients):
            violations.append(Violation(
                "setting", f"{key} lists {len(values)} values but NUM_CLIENTS={num_clients}: "
                           "expected one value for every client or one per client"))
    return violations
