"""Read an env file as text: its values, bad lines, likely misspellings and repeated keys."""

from __future__ import annotations

import difflib
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv.main import DotEnv
from dotenv.parser import parse_stream

from splitnet.config.fields import KNOWN_KEYS
from splitnet.config.files import MAX_TEXT_FILE_BYTES, read_text_file
from splitnet.config.parsing import show
from splitnet.errors import Violation

__all__ = ["MAX_ENV_FILE_BYTES", "read_env_file"]

MAX_ENV_FILE_BYTES = MAX_TEXT_FILE_BYTES


def read_env_file(path: Path) -> tuple[dict[str, str], list[Violation], list[str]]:
    """Read an env file as text; return its values, violations and warnings (never raises)."""
    try:
        content = read_text_file(path, MAX_ENV_FILE_BYTES)
    except ValueError as exc:
        return {}, [Violation("env-file", f"env file {path}: {exc}")], []
    bindings = list(parse_stream(io.StringIO(content)))
    violations = [
        Violation("env-file", f"{path} line {binding.original.line}: cannot parse "
                  f"{show(binding.original.string.strip())}; expected KEY=VALUE")
        for binding in bindings
        if binding.error
    ]
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)  # we report bad lines ourselves
    values = DotEnv(None, stream=io.StringIO(content), interpolate=True).dict()
    clean = {key: value for key, value in values.items() if value is not None}
    return clean, violations, _misspellings(clean, path) + _repeats(bindings, clean, path)


def _repeats(bindings: list[Any], values: Mapping[str, str], path: Path) -> list[str]:
    """Warn of each key set on several lines: the file's last line wins, as in Compose."""
    lines: dict[str, list[int]] = {}
    for binding in bindings:
        if binding.key is not None and not binding.error:
            lines.setdefault(binding.key, []).append(binding.original.line)
    return [f"{path}: {key} is set on lines {', '.join(map(str, at))}; "
            + (f"the file's last value ({show(values[key])}) counts" if key in values
               else "the last line unsets it (the default counts)")
            for key, at in lines.items() if len(at) > 1]


def _misspellings(values: Mapping[str, str], path: Path) -> list[str]:
    warnings = []
    for key in values:
        if key in KNOWN_KEYS:
            continue
        close = difflib.get_close_matches(key.upper(), sorted(KNOWN_KEYS), n=1, cutoff=0.8)
        if close:
            warnings.append(f"{path}: unknown key {key} is ignored; did you mean {close[0]}?")
    return warnings
