"""Parsers of the traffic-shaping settings the container entrypoint hands to ``tc``.

``UPLOAD_BANDWIDTH`` / ``DOWNLOAD_BANDWIDTH`` are tc rates, ``NETWORK_DELAY`` /
``NETWORK_JITTER`` tc times, ``NETWORK_LOSS`` a netem percentage.
"""

from __future__ import annotations

import re

from splitnet.config.parsing import plain_float

__all__ = ["bandwidth", "percent", "time_value"]

_BANDWIDTH_RE = re.compile(r"[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps|tbps)")
_TIME_RE = re.compile(r"[0-9]+(\.[0-9]+)?(us|ms|s)")


def bandwidth(value: str) -> str:
    """Parse a tc rate such as ``100mbit`` or ``12.5mbps``."""
    cleaned = value.strip().lower()
    if not _BANDWIDTH_RE.fullmatch(cleaned):
        raise ValueError("expected a rate with a tc unit, e.g. 100mbit, 512kbit or 10mbps")
    return cleaned


def time_value(value: str) -> str:
    """Parse a tc time such as ``20ms``."""
    cleaned = value.strip().lower()
    if not _TIME_RE.fullmatch(cleaned):
        raise ValueError("expected a time with a unit, e.g. 20ms, 500us or 1s")
    return cleaned


def percent(value: str) -> str:
    """Parse a percentage such as ``0.5%`` (0 to 100)."""
    cleaned = value.strip().rstrip("%")
    try:
        number = plain_float(cleaned)
    except ValueError:
        raise ValueError("expected a percentage from 0 to 100, e.g. 0.5%") from None
    if not 0 <= number <= 100:
        raise ValueError("expected a percentage from 0 to 100, e.g. 0.5%")
    return f"{cleaned}%"
