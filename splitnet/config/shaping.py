"""Parsers of the traffic-shaping settings the container entrypoint hands to ``tc``.

``UPLOAD_BANDWIDTH`` / ``DOWNLOAD_BANDWIDTH`` are tc rates, ``NETWORK_DELAY`` /
``NETWORK_JITTER`` tc times, ``NETWORK_LOSS`` a netem percentage. The entrypoint passes the
text to ``tc`` as it is, so what ``tc`` would refuse (a rate of 0, ``5 %``) is refused here,
by ``splitnet validate``, instead of stopping the container (exit 3). Rates start at 1kbit, as
``CLIENT_BANDWIDTH``'s do.
"""

from __future__ import annotations

import re

from splitnet.config.costs import MIN_BYTES_PER_SECOND, bytes_per_second

__all__ = ["bandwidth", "percent", "time_value"]

_BANDWIDTH_RE = re.compile(r"[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps|tbps)")
_TIME_RE = re.compile(r"[0-9]+(\.[0-9]+)?(us|ms|s)")
_PERCENT_RE = re.compile(r"[0-9]+(\.[0-9]+)?%?")
_RATE_RULE = "expected a rate from 1kbit with a tc unit, e.g. 100mbit, 512kbit or 10mbps"
_PERCENT_RULE = "expected a percentage from 0 to 100, e.g. 0.5% (no space before the %)"


def bandwidth(value: str) -> str:
    """Parse a tc rate such as ``100mbit`` or ``12.5mbps``."""
    cleaned = value.strip().lower()
    if not _BANDWIDTH_RE.fullmatch(cleaned):
        raise ValueError(_RATE_RULE)
    try:
        too_slow = bytes_per_second(cleaned) < MIN_BYTES_PER_SECOND
    except ValueError:  # a rate of 0
        too_slow = True
    if too_slow:
        raise ValueError(f"{cleaned} is below 1kbit (tc refuses a rate of 0); {_RATE_RULE}")
    return cleaned


def time_value(value: str) -> str:
    """Parse a tc time such as ``20ms``."""
    cleaned = value.strip().lower()
    if not _TIME_RE.fullmatch(cleaned):
        raise ValueError("expected a time with a unit, e.g. 20ms, 500us or 1s")
    return cleaned


def percent(value: str) -> str:
    """Parse a percentage such as ``0.5%`` or ``0.5`` (0 to 100); return it with its ``%``."""
    cleaned = value.strip()
    if not _PERCENT_RE.fullmatch(cleaned) or not 0 <= float(cleaned.rstrip("%")) <= 100:
        raise ValueError(_PERCENT_RULE)
    return f"{cleaned.rstrip('%')}%"
