"""Read an env file as text: its values, the lines that do not parse, and likely misspellings."""

from __future__ import annotations

import difflib
import io
import logging
from collections.abc import Mapping
from pathlib import Path

from dotenv.main import DotEnv
from dotenv.parser import parse_stream

from splitnet.config.fields import KNOWN_KEYS
from splitnet.config.parsing import show
from splitnet.errors import Violation

__all__ = ["MAX_ENV_FILE_BYTES", "read_env_file"]

MAX_ENV_FILE_BYTES = 4 * 1024 * 1024


def read_env_file(path: Path) -> tuple[dict[str, str], list[Violation], list[str]]:
    """Read an env file as text; return its values, violations and warnings (never raises)."""
    try:
        size = path.stat().st_size
        if size > MAX_ENV_FILE_BYTES:
            return {}, [Violation("env-file", f"{path} is {size} bytes; the limit is "
                                  f"{MAX_ENV_FILE_BYTES} (is it really an env file?)")], []
        raw = path.read_bytes()
    except OSError as exc:
        return {}, [Violation("env-file", f"cannot read {path}: {exc.strerror or exc}")], []
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, [Violation("env-file", f"{path} is not UTF-8 text (byte {exc.start})")], []
    if "\x00" in content:
        return {}, [Violation("env-file", f"{path} contains NUL bytes; expected text")], []
    violations = [
        Violation("env-file", f"{path} line {binding.original.line}: cannot parse "
                  f"{show(binding.original.string.strip())}; expected KEY=VALUE")
        for binding in parse_stream(io.StringIO(content))
        if binding.error
    ]
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)  # we report bad lines ourselves
    values = DotEnv(None, stream=io.StringIO(content), interpolate=True).dict()
    clean = {key: value for key, value in values.items() if value is not None}
    return clean, violations, _misspellings(clean, path)


def _misspellings(values: Mapping[str, str], path: Path) -> list[str]:
    warnings = []
    for key in values:
        if key in KNOWN_KEYS:
            continue
        close = difflib.get_close_matches(key.upper(), sorted(KNOWN_KEYS), n=1, cutoff=0.8)
        if close:
            warnings.append(f"{path}: unknown key {key} is ignored; did you mean {close[0]}?")
    return warnings
