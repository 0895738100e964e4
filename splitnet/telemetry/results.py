"""Result files: ``metrics.csv`` per round, ``summary.json``, ``timeline.csv`` and models.

Layout of ``RESULTS_DIR``: ``metrics.csv``, ``summary.json``, ``timeline.csv`` (one row per
executed task of every client; each client writes ``timeline-client{n}.csv`` and ``splitnet
local`` merges them), ``models/round{r}.safetensors`` (the averaged model after round r). The
rows' formats are :class:`splitnet.telemetry.records.RoundRow` and ``TimelineRow``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from splitnet.telemetry.records import METRIC_COLUMNS, TIMELINE_COLUMNS, RoundRow, TimelineRow

__all__ = ["ResultsWriter", "merge_timelines"]


class ResultsWriter:
    """Writes one run's result files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._metrics = root / "metrics.csv"

    def start_metrics(self) -> None:
        """Start ``metrics.csv`` with its header (truncating an earlier run's)."""
        with self._metrics.open("w", newline="") as handle:
            csv.writer(handle).writerow(METRIC_COLUMNS)

    def add_round(self, row: RoundRow) -> None:
        """Append one round's metrics."""
        with self._metrics.open("a", newline="") as handle:
            csv.writer(handle).writerow(row.as_csv())

    def save_model(self, round_: int, state: Mapping[str, torch.Tensor]) -> Path:
        """Write the averaged model of ``round_`` as safetensors; return its path."""
        path = self.root / "models" / f"round{round_}.safetensors"
        path.parent.mkdir(exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return path

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Write ``summary.json``."""
        (self.root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    def write_timeline(self, client: int, rows: Iterable[TimelineRow]) -> None:
        """Write this client's executed tasks."""
        with (self.root / f"timeline-client{client}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(TIMELINE_COLUMNS)
            writer.writerows(row.as_csv() for row in rows)

    def write_client(self, client: int, facts: Mapping[str, Any]) -> None:
        """Write one client's own counters as ``client-{client}.json`` (read by ``bench``)."""
        (self.root / f"client-{client}.json").write_text(json.dumps(facts, indent=2) + "\n")


def merge_timelines(root: Path) -> Path:
    """Merge every ``timeline-client*.csv`` into ``timeline.csv`` sorted by start time."""
    rows: list[list[str]] = []
    for path in sorted(root.glob("timeline-client*.csv")):
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            rows.extend(reader)
    rows.sort(key=lambda r: float(r[5]))
    target = root / "timeline.csv"
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TIMELINE_COLUMNS)
        writer.writerows(rows)
    return target
