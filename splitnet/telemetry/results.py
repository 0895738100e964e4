"""Result files: ``metrics.csv`` per round, ``summary.json``, ``timeline.csv`` and models.

Each run writes into its own folder ``RESULTS_DIR/runs/<run id>/`` (Note: a run owns its folder,
in :mod:`splitnet.telemetry.runs`). Layout of a run folder: ``metrics.csv``, ``summary.json``,
``timeline.csv`` (one row per compute step or sent tensor of every client, rounds from 0; each
client writes ``timeline-client{n}.csv`` and ``splitnet local`` merges them), ``client-{n}.json``,
``models/round{r}.safetensors`` (the averaged model after round r, from 1 as ``metrics.csv``). The
rows' formats are :class:`splitnet.telemetry.records.RoundRow` and ``TimelineRow``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import torch
from safetensors.torch import save_file

from splitnet.telemetry.records import METRIC_COLUMNS, TIMELINE_COLUMNS, RoundRow, TimelineRow
from splitnet.telemetry.runs import (
    began,
    check_unfinished,
    new_run_id,
    point_latest,
    run_folder,
)

__all__ = ["ResultsWriter", "merge_timelines"]

log = logging.getLogger("splitnet.telemetry")


class ResultsWriter:
    """Writes one run's result files into its run folder under ``results_dir``.

    Nothing is written before the run is known: the aggregator :meth:`start` s it, the other
    clients :meth:`follow` the id the aggregator announced.
    """

    def __init__(self, results_dir: Path) -> None:
        self.results_dir = results_dir
        self.run_id: str | None = None
        self._root: Path | None = None

    @classmethod
    def into(cls, folder: Path) -> ResultsWriter:
        """Return a writer that writes straight into ``folder`` (no run: the baseline's)."""
        writer = cls(folder)
        folder.mkdir(parents=True, exist_ok=True)
        writer._root = folder
        return writer

    @property
    def root(self) -> Path:
        """Return this run's folder (only once the run is known)."""
        assert self._root is not None, "the run is not known yet"
        return self._root

    @property
    def _metrics(self) -> Path:
        return self.root / "metrics.csv"

    def start(self, run_id: str | None = None) -> Path:
        """Make this run's folder (a fresh id unless ``run_id``) and point ``latest`` at it.

        Raises ConfigError when ``run_id`` names a finished run.
        """
        runs = self.results_dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        if run_id is not None:
            check_unfinished(self.results_dir, run_id)
            folder = run_folder(self.results_dir, run_id)
            if began(folder):  # an unfinished run of this id (stopped, restarted): go on
                log.info("RUN_ID=%s: going on in %s (a run of this id that did not finish)",
                         run_id, folder)
            folder.mkdir(exist_ok=True)
        else:
            while True:  # a fresh id names a folder no other run has
                run_id = new_run_id()
                try:
                    run_folder(self.results_dir, run_id).mkdir()
                    break
                except FileExistsError:
                    continue
        point_latest(self.results_dir, run_id)
        return self.follow(run_id)

    def follow(self, run_id: str) -> Path:
        """Write into the folder of run ``run_id`` (validated), made by its aggregator."""
        folder = run_folder(self.results_dir, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.run_id, self._root = run_id, folder
        return folder

    def start_metrics(self, rows: Iterable[RoundRow] = ()) -> None:
        """Start ``metrics.csv``: its header and ``rows`` (a resumed run's), replacing the file.

        Written to a temporary file renamed into place: a kill leaves the old file or the new.
        """
        def write(handle: TextIO) -> None:
            writer = csv.writer(handle)
            writer.writerow(METRIC_COLUMNS)
            writer.writerows(row.as_csv() for row in rows)

        _replace(self._metrics, write)

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
        """Write ``summary.json`` (replaced whole: a kill leaves the old file or the new)."""
        _replace(self.root / "summary.json",
                 lambda handle: handle.write(json.dumps(summary, indent=2) + "\n"))

    def write_timeline(self, client: int, rows: Iterable[TimelineRow],
                       kept_through: int | None = None) -> None:
        """Write this client's executed tasks, replacing the file whole.

        A resumed run (``kept_through``: the round it resumed after) keeps the rows of rounds up
        to it from the file, so the timeline covers the whole run, no round twice.
        """
        path = self.root / f"timeline-client{client}.csv"
        kept: list[list[str]] = []
        if kept_through is not None and path.is_file():
            with path.open(newline="") as handle:  # a row without the last column (cpu):
                old = [row + [""] * (len(row) == len(TIMELINE_COLUMNS) - 1)  # written before it
                       for row in list(csv.reader(handle))[1:]]
            kept = [row for row in old if len(row) == len(TIMELINE_COLUMNS)
                    and row[4].isdigit() and int(row[4]) <= kept_through]

        def write(handle: TextIO) -> None:
            writer = csv.writer(handle)
            writer.writerow(TIMELINE_COLUMNS)
            writer.writerows(kept)
            writer.writerows(row.as_csv() for row in rows)

        _replace(path, write)

    def write_client(self, client: int, facts: Mapping[str, Any]) -> None:
        """Write one client's own counters as ``client-{client}.json`` (read by ``bench``)."""
        _replace(self.root / f"client-{client}.json",
                 lambda handle: handle.write(json.dumps(facts, indent=2) + "\n"))


def _replace(path: Path, write: Callable[[TextIO], Any]) -> None:
    """Write ``path`` through a temporary file renamed into place: never half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", newline="") as handle:
        write(handle)
    temporary.replace(path)


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
