"""What ``splitnet report`` reads, checked: ``metrics.csv``, ``timeline.csv``, ``summary.json``.

Note: damaged results. A results folder outlives the run that wrote it: a client killed while
writing leaves a cut-off last line, a copied or hand-edited file may hold anything. Every value
the report uses is parsed here into a typed row, and a file that does not hold what splitnet
writes is refused with the file, the line and the rule (a ConfigError, exit 2), never an
internal error halfway through the figures. Scores (accuracy, macro F1) are fractions from 0 to
1, so ``nan`` and ``inf`` are refused alike; a loss may be ``nan`` or ``inf`` (a diverged run
records it) but never negative. Numbers are plain ASCII spellings (``float`` alone would take
``1_0`` or full-width digits).

``RESULTS_DIR`` is read as the other commands read settings: the environment's non-empty value
over the env file's (``./.env`` when present, or ``--env-file``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitnet.config.envfile import read_env_file
from splitnet.config.files import read_text_file
from splitnet.config.load import merged_values
from splitnet.errors import ConfigError, Violation

__all__ = ["MetricsPoint", "Span", "read_metrics", "read_summary", "read_timeline",
           "results_dir_setting"]

_INTEGER = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?(nan|inf)",
                     re.IGNORECASE)
_KINDS = ("compute", "transfer")
METRICS_USED = ("round", "test_accuracy", "f1_macro", "test_loss", "train_loss")
TIMELINE_USED = ("client", "owner", "start", "end", "kind")


@dataclass(frozen=True)
class MetricsPoint:
    """What the report reads of one ``metrics.csv`` line."""

    round: int
    test_accuracy: float
    f1_macro: float
    test_loss: float
    train_loss: float


@dataclass(frozen=True)
class Span:
    """What the report reads of one ``timeline.csv`` line: a compute step or a sent tensor."""

    client: int
    owner: int
    start: float
    end: float
    kind: str
    peer: int | None
    nbytes: int


def _refuse(message: str) -> ConfigError:
    return ConfigError(Violation("results", message))


def _rows(path: Path, used: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ``(where, row)`` for each data line of the CSV ``path``, after checking its header."""
    if not path.is_file():
        raise _refuse(f"{path} not found (or not a file): run `splitnet local` (or the "
                      "containers) first")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _refuse(f"{path} line {line}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise _refuse(f"{path}: empty; expected a header line naming the columns "
                          f"{', '.join(used)}")
        missing = [c for c in used if c not in header]
        if missing:
            raise _refuse(f"{path} line 1: wrong header: no {', '.join(missing)} column; "
                          f"expected the columns {', '.join(used)} (as splitnet writes "
                          f"{path.name})")
        for cells in reader:
            if not cells:
                continue
            if len(cells) != len(header):
                raise _refuse(f"{path} line {reader.line_num}: {len(cells)} values, expected "
                              f"{len(header)} (one per header column; a cut-off line?)")
            yield f"{path} line {reader.line_num}", dict(zip(header, cells, strict=True))
    except csv.Error as exc:
        raise _refuse(f"{path} line {reader.line_num}: not CSV ({exc})") from None


def _integer(row: Mapping[str, str], key: str, where: str, low: int) -> int:
    text = row[key].strip()
    if not _INTEGER.fullmatch(text) or int(text) < low:
        raise _refuse(f"{where}: {key}={text!r}: expected a whole number >= {low}")
    return int(text)


def _number(row: Mapping[str, str], key: str, where: str) -> float:
    text = row[key].strip()
    if not _NUMBER.fullmatch(text):
        raise _refuse(f"{where}: {key}={text!r}: expected a number")
    return float(text)


def _score(row: Mapping[str, str], key: str, where: str) -> float:
    value = _number(row, key, where)
    if not 0 <= value <= 1:  # nan and inf fail alike
        raise _refuse(f"{where}: {key}={row[key].strip()!r}: expected a score from 0 to 1")
    return value


def _loss(row: Mapping[str, str], key: str, where: str) -> float:
    value = _number(row, key, where)
    if value < 0:  # nan passes: a diverged run is recorded, not refused
        raise _refuse(f"{where}: {key}={row[key].strip()!r}: expected a loss >= 0 (or nan)")
    return value


def read_metrics(path: Path) -> list[MetricsPoint]:
    """Return the rounds of ``metrics.csv`` (a run's or the baseline's); refuse a damaged file."""
    return [MetricsPoint(_integer(row, "round", where, 1), _score(row, "test_accuracy", where),
                         _score(row, "f1_macro", where), _loss(row, "test_loss", where),
                         _loss(row, "train_loss", where))
            for where, row in _rows(path, METRICS_USED)]


def _span(row: Mapping[str, str], where: str) -> Span:
    start, end = _number(row, "start", where), _number(row, "end", where)
    for key, value in (("start", start), ("end", end)):
        if not math.isfinite(value):
            raise _refuse(f"{where}: {key}={row[key].strip()!r}: expected seconds since the "
                          "epoch")
    kind = row["kind"].strip()
    if kind not in _KINDS:
        raise _refuse(f"{where}: kind={kind!r}: expected one of {', '.join(_KINDS)}")
    peer = _integer(row, "peer", where, 1) if row.get("peer", "").strip() else None
    nbytes = _integer(row, "bytes", where, 0) if row.get("bytes", "").strip() else 0
    return Span(_integer(row, "client", where, 1), _integer(row, "owner", where, 1), start, end,
                kind, peer, nbytes)


def read_timeline(path: Path) -> list[Span]:
    """Return the steps and transfers of ``timeline.csv``; refuse a damaged file."""
    return [_span(row, where) for where, row in _rows(path, TIMELINE_USED)]


def read_summary(path: Path) -> dict[str, Any]:
    """Return ``summary.json`` ({} if there is none); refuse one splitnet did not write."""
    if not path.exists():
        return {}
    try:
        data = json.loads(read_text_file(path))
    except ValueError as exc:  # the file's rule (not UTF-8, too large), or not JSON
        where = f" line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise _refuse(f"{path}{where}: {getattr(exc, 'msg', exc)}; expected the run's summary "
                      "as a JSON object") from None
    if not isinstance(data, dict):
        raise _refuse(f"{path}: a JSON {type(data).__name__}; expected the run's summary as a "
                      "JSON object")
    for key, kinds in (("model", (str,)), ("dataset", (str,)), ("clients", (int,))):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], kinds)):
            raise _refuse(f"{path}: {key}={json.dumps(data[key])[:40]}: expected "
                          f"{'a whole number' if kinds == (int,) else 'a name'}")
    return data


def results_dir_setting(env_file: Path | None, *, required: bool = False,
                        environ: Mapping[str, str] | None = None) -> Path:
    """Return ``RESULTS_DIR``: the environment's non-empty value, else the env file's.

    Else ``./results``. The env file is read when it exists (always, with ``required``).
    """
    file_values: dict[str, str] = {}
    if env_file is not None and (required or env_file.exists()):
        file_values, violations, _ = read_env_file(env_file)
        if violations:
            raise ConfigError(violations, str(env_file))
    values = merged_values(file_values, os.environ if environ is None else environ)
    return Path(values.get("RESULTS_DIR", "").strip() or "results")
