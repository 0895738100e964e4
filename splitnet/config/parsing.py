"""Value parsers for settings: each takes a string and returns a value or raises ``ValueError``.

The ``ValueError`` message states the rule (``"expected a positive integer"``); the caller adds
the key and the value. ``parse_literal`` reads JSON or a Python literal as data: nothing is ever
imported, evaluated or executed.

Note: plain numbers. Python's ``int`` and ``float`` read more than a person means in a settings
file: ``3_2`` is 32 and ``0_1`` is 1.0 (digit grouping), 32 written in Arabic-Indic or
full-width digits is 32 (any Unicode digit), and ``float`` takes ``inf`` and ``nan``. A value
that looks wrong must be refused, never read as some other number, and the same text is read by
other programs too (the entrypoint's shell and ``tc``, Compose), so settings and ``PEERS`` ports
take only plain ASCII spellings (:func:`plain_int`, :func:`plain_float`): an optional sign, the
digits 0-9, a decimal point and an exponent (``1e-5``).
"""

from __future__ import annotations

import ast
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "MAX_LITERAL_CHARS",
    "boolean",
    "choice",
    "directory",
    "folder",
    "host",
    "host_port_list",
    "integer",
    "number",
    "open_fraction",
    "parse_literal",
    "plain_float",
    "plain_int",
    "positive_float",
    "run_id",
    "show",
    "text",
]

MAX_LITERAL_CHARS = 1_000_000
_LABEL_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_HOST_RULE = "expected an IPv4 address, a bracketed IPv6 address or a host name"
_RUN_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DIGITS_RE = re.compile(r"[0-9]+")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def show(value: str, limit: int = 60) -> str:
    """Return ``value`` quoted and shortened for an error message."""
    shown = value if len(value) <= limit else value[: limit - 3] + "..."
    return repr(shown)


def plain_int(value: str) -> int:
    """Return the integer ``value`` spells in plain ASCII digits; else ``ValueError``.

    Surrounding whitespace is ignored; ``3_2``, ``0x20`` or non-ASCII digits are refused
    (Note: plain numbers).
    """
    cleaned = value.strip()
    if not _INT_RE.fullmatch(cleaned):
        raise ValueError(f"{show(cleaned)} is not a plain integer (ASCII digits 0-9)")
    return int(cleaned)


def plain_float(value: str) -> float:
    """Return the number ``value`` spells in plain ASCII (``0.5``, ``1e-5``); else ``ValueError``.

    Surrounding whitespace is ignored; ``0_1``, ``inf``, ``nan`` or non-ASCII digits are
    refused (Note: plain numbers).
    """
    cleaned = value.strip()
    if not _FLOAT_RE.fullmatch(cleaned):
        raise ValueError(f"{show(cleaned)} is not a plain number (ASCII digits 0-9, '.', e)")
    return float(cleaned)


def text(value: str) -> str:
    """Return the string stripped of surrounding whitespace."""
    return value.strip()


def integer(minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """Return a parser for an integer within ``[minimum, maximum]``."""
    if maximum is not None:
        rule = f"expected an integer from {minimum} to {maximum}"
    elif minimum == 1:
        rule = "expected a positive integer"
    else:
        rule = f"expected an integer ≥ {minimum}"

    def parse(value: str) -> int:
        try:
            number = plain_int(value)
        except ValueError:
            raise ValueError(rule) from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(rule)
        return number

    return parse


def positive_float(value: str) -> float:
    """Parse a finite number greater than zero."""
    try:
        number = plain_float(value)
    except ValueError:
        raise ValueError("expected a positive number, e.g. 0.01") from None
    if not (number > 0 and number != float("inf")):
        raise ValueError("expected a positive number, e.g. 0.01")
    return number


def number(minimum: float, maximum: float | None = None,
           example: str = "1") -> Callable[[str], float]:
    """Return a parser for a finite number within ``[minimum, maximum]``."""
    rule = (f"expected a number from {minimum:g} to {maximum:g}, e.g. {example}"
            if maximum is not None else f"expected a number ≥ {minimum:g}, e.g. {example}")

    def parse(value: str) -> float:
        try:
            parsed = plain_float(value)
        except ValueError:
            raise ValueError(rule) from None
        if not math.isfinite(parsed) or parsed < minimum or (
                maximum is not None and parsed > maximum):
            raise ValueError(rule)
        return parsed

    return parse


def open_fraction(value: str) -> float:
    """Parse a number strictly between 0 and 1, e.g. ``1e-5``."""
    rule = "expected a number strictly between 0 and 1, e.g. 1e-5"
    try:
        parsed = plain_float(value)
    except ValueError:
        raise ValueError(rule) from None
    if not 0 < parsed < 1:  # NaN fails too
        raise ValueError(rule)
    return parsed


def host(value: str, *, bracketed_ipv6: bool = False) -> str:
    """Parse an IPv4 address, an IPv6 address (in brackets if asked) or a host name."""
    cleaned = value.strip()
    if cleaned.startswith("[") or ":" in cleaned:
        bracketed = cleaned.startswith("[") and cleaned.endswith("]")
        if bracketed_ipv6 and not bracketed:
            raise ValueError(f"{_HOST_RULE} (an IPv6 address goes in brackets, e.g. [::1])")
        if not bracketed_ipv6 and cleaned.startswith("["):
            raise ValueError("expected an IPv4 address, an IPv6 address written bare (e.g. :: "
                             "or ::1, no brackets) or a host name")
        try:
            ipaddress.IPv6Address(cleaned[1:-1] if bracketed else cleaned)
        except ValueError:
            raise ValueError(f"{_HOST_RULE}; {show(cleaned)} is not an IPv6 address") from None
        return cleaned
    if re.fullmatch(r"[0-9.]+", cleaned):
        try:
            ipaddress.IPv4Address(cleaned)
        except ValueError:
            raise ValueError(f"{_HOST_RULE}; {show(cleaned)} is not an IPv4 address") from None
        return cleaned
    labels = cleaned.rstrip(".").split(".")
    if not cleaned or len(cleaned) > 253 or not all(_LABEL_RE.fullmatch(x) for x in labels):
        raise ValueError(f"{_HOST_RULE} (labels of letters, digits and '-', at most 63 "
                         "characters each), e.g. 0.0.0.0, :: or client1")
    return cleaned


def host_port_list(value: str) -> str:
    """Parse comma-separated ``host:port`` entries (IPv6 in brackets, ports 1 to 65535)."""
    problems = []
    for entry in (part.strip() for part in value.split(",")):
        name, sep, port = entry.rpartition(":")
        try:
            if not sep or not _DIGITS_RE.fullmatch(port) or not 1 <= int(port) <= 65535:
                raise ValueError("expected host:port with a port from 1 to 65535")
            host(name, bracketed_ipv6=True)
        except ValueError as exc:
            problems.append(f"entry {show(entry)}: {exc}")
    if problems:
        raise ValueError("; ".join(problems) + " (e.g. client1:50051,127.0.0.1:7001,[::1]:7002)")
    return value.strip()


def folder(value: str) -> str:
    """Parse a folder that exists or may be created: not a file or device, nor under one."""
    _nearest_folder(value.strip())
    return value.strip()


def _nearest_folder(cleaned: str) -> str:
    """Return the nearest existing path of ``cleaned`` or above; ``ValueError`` if no folder."""
    path = os.path.abspath(cleaned)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        what = "" if path == os.path.abspath(cleaned) else f" ({path} is in the way)"
        raise ValueError(f"expected a folder that exists or can be created; it is a file or "
                         f"device{what}")
    return path


def directory(value: str) -> str:
    """Parse a folder that exists or can be created: not a file or device, and writable."""
    cleaned = value.strip()
    path = _nearest_folder(cleaned)
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"expected a folder this process can write; {path} is not writable")
    return cleaned


def run_id(value: str) -> str:
    """Parse a run id: 1 to 64 of ``A-Z a-z 0-9 . _ -``, not ``.`` or ``..`` (a folder name)."""
    if not _RUN_ID_RE.fullmatch(value) or value in (".", ".."):
        raise ValueError("expected 1 to 64 characters from A-Z a-z 0-9 . _ - (a folder name, "
                         "not . or ..)")
    return value


def boolean(value: str) -> bool:
    """Parse true/false, yes/no, on/off, 1/0 (empty means false)."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def choice(*options: str) -> Callable[[str], str]:
    """Return a parser accepting one of ``options``, case-insensitively; returns the option."""
    by_fold = {option.casefold(): option for option in options}

    def parse(value: str) -> str:
        found = by_fold.get(value.strip().casefold())
        if found is None:
            raise ValueError(f"expected one of {', '.join(options)}")
        return found

    return parse


def parse_literal(value: str) -> Any:
    """Read JSON or a Python literal as plain data; raise ``ValueError`` with the reason."""
    if len(value) > MAX_LITERAL_CHARS:
        raise ValueError(f"is {len(value)} characters long; the limit is {MAX_LITERAL_CHARS}")
    if "\x00" in value:
        raise ValueError("contains a NUL byte; expected text")
    stripped = value.strip()
    if not stripped:
        raise ValueError("is empty; expected a list of lists, e.g. [['1_1', '1_2'], ['2_1']]")
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        reason = getattr(exc, "msg", None) or (
            "only literals are allowed: strings, numbers, lists"
            if isinstance(exc, (ValueError, TypeError)) else type(exc).__name__)
        raise ValueError(
            f"is not valid JSON or a Python literal ({reason}); "
            "expected a list of lists, e.g. [['1_1', '1_2'], ['2_1']]"
        ) from None
