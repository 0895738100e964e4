"""The aggregator's record of the run: evaluate each averaged model, write rows and the summary.

Note: evaluation off the critical path. The clients train round r+1 while the aggregator
evaluates round r; evaluations run in round order (each waits for the one before) and all end
before the aggregator sends Finish and writes the summary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from splitnet.learning.cut_privacy import dp_block, run_epsilon
from splitnet.learning.evaluation import evaluate
from splitnet.learning.keys import by_partition
from splitnet.learning.models import compose
from splitnet.node.data import LocalData
from splitnet.node.state import Background
from splitnet.plan.plan import Plan
from splitnet.telemetry.metrics import Metrics
from splitnet.telemetry.records import Exchange, OwnerStats, RoundRow, Trained, run_summary
from splitnet.telemetry.results import ResultsWriter
from splitnet.transport.messages import Blob

__all__ = ["Recorder"]

log = logging.getLogger("splitnet.node")


class Recorder:
    """Evaluates every round's averaged model in order and records rows, models and summary."""

    def __init__(self, plan: Plan, data: LocalData, parts: list[nn.Module],
                 results: ResultsWriter, metrics: Metrics, background: Background) -> None:
        self._plan = plan
        self._data = data  # read after join (Note: data after join), before round 0 ends
        self._parts = parts
        self._results = results
        self._metrics = metrics
        self._background = background
        self._evaluations: list[asyncio.Future[None]] = []
        self._counters: dict[int, tuple[int, int]] = {}  # round -> (sent, received), cumulative
        self.rows: list[RoundRow] = []
        self.peak_rss_kib: dict[int, int] = {}
        self._bulk: dict[int, tuple[int, int]] = {}  # client -> (sent, received), cumulative
        self.busiest_bulk: dict[int, int] = {}  # round -> the busiest client's bulk bytes
        self.torrent_disk: dict[int, int] = {}
        self.torrent_disk_history: list[int] = []
        self.model_path: Path | None = None

    def start(self, rows: Sequence[RoundRow] = (),
              averaged: Mapping[str, torch.Tensor] | None = None,
              torrent_disk_history: Sequence[int] = ()) -> None:
        """Start ``metrics.csv``; a resumed run's with its rows so far and last averaged model."""
        self.rows = list(rows)
        self.torrent_disk_history = list(torrent_disk_history)
        self._results.start_metrics(self.rows)
        if averaged is not None and self.rows:
            self.model_path = self._results.save_model(self.rows[-1].round, averaged)

    def record(self, round_: int, blobs: Sequence[Blob], owners: Sequence[OwnerStats],
               averaged: Mapping[str, torch.Tensor], seconds: float) -> None:
        """Evaluate and record round ``round_`` once the rounds before it are recorded."""
        previous = self._evaluations[-1] if self._evaluations else None
        evaluation = self._background.start(
            self._evaluate_round(previous, round_, blobs, owners, averaged, seconds))
        self._evaluations.append(evaluation)

    async def drain(self) -> None:
        """Wait until every round is recorded."""
        await asyncio.gather(*self._evaluations)

    async def _evaluate_round(self, previous: asyncio.Future[None] | None, round_: int,
                              blobs: Sequence[Blob], owners: Sequence[OwnerStats],
                              averaged: Mapping[str, torch.Tensor], seconds: float) -> None:
        if previous is not None:
            await previous
        scores = await asyncio.get_running_loop().run_in_executor(None, self._evaluate, averaged)
        self._record(round_, blobs, owners, scores, averaged, seconds)

    def _evaluate(self, averaged: Mapping[str, torch.Tensor]) -> dict[str, float]:
        parts = by_partition(averaged)
        for p, part in enumerate(self._parts, 1):
            part.load_state_dict(parts[p])
        dataset = self._data.dataset
        return evaluate(compose(self._parts), dataset.test_x, dataset.test_y)

    def _record(self, round_: int, blobs: Sequence[Blob], owners: Sequence[OwnerStats],
                scores: dict[str, float], averaged: Mapping[str, torch.Tensor],
                seconds: float) -> None:
        sent = sum(int(b.meta.get("sent", 0)) for b in blobs)
        received = sum(int(b.meta.get("received", 0)) for b in blobs)
        sent_before, received_before = self._counters.get(round_ - 1, (0, 0))
        self._counters[round_] = (sent, received)
        self._note_bulk(round_, blobs)
        row = RoundRow.measured(
            round_, scores, loss_sum=sum(o.loss_sum for o in owners),
            batches=sum(o.batches for o in owners), seconds=seconds,
            bytes_sent=sent - sent_before, bytes_received=received - received_before,
            samples=sum(o.samples for o in owners))
        self._results.add_round(row)
        m = self._metrics
        m.test_accuracy.labels(m.client).set(row.test_accuracy)
        m.test_f1.labels(m.client).set(row.f1_macro)
        m.round_seconds.labels(m.client).set(row.round_seconds)
        self.rows.append(row)
        self.peak_rss_kib = {b.sender: int(b.meta.get("peak_rss_kib", 0)) for b in blobs}
        self.torrent_disk = {b.sender: int(b.meta.get("torrent_disk_bytes", 0))
                             for b in blobs}
        self.torrent_disk_history.append(sum(self.torrent_disk.values()))
        self.model_path = self._results.save_model(round_ + 1, averaged)
        log.info("round %d/%d: test accuracy %.4f, macro F1 %.4f, train loss %.4f, %.1fs",
                 round_ + 1, self._plan.training.num_rounds, row.test_accuracy, row.f1_macro,
                 row.train_loss, row.round_seconds)

    def _note_bulk(self, round_: int, blobs: Sequence[Blob]) -> None:
        """Keep the busiest client's round-end bytes of ``round_`` (more of sent, received)."""
        moved = []
        for blob in blobs:
            now = (int(blob.meta.get("bulk_sent", 0)), int(blob.meta.get("bulk_received", 0)))
            before = self._bulk.get(blob.sender, (0, 0))
            self._bulk[blob.sender] = now
            moved.append(max(now[0] - before[0], now[1] - before[1]))
        self.busiest_bulk[round_] = max(moved, default=0)

    def summary(self, seconds: float, exchange_seconds: Sequence[float], *,
                bulk_transport: str, activation_transport: str,
                dropped: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """Write and return the run summary (``summary.json``), with the drops if any.

        Its ``dp`` block holds the DP settings and the ε spent (Note: noise at the cut).
        """
        assert self.model_path is not None, "no round was recorded"
        s = self._plan.training
        summary = run_summary(
            s.model, s.dataset, self.peak_rss_kib,
            trained=Trained(self._plan.fingerprint, self._plan.num_clients, self.rows,
                            seconds, self.model_path.stat().st_size),
            exchange=Exchange(bulk_transport, activation_transport, exchange_seconds,
                              self.torrent_disk, self.torrent_disk_history))
        summary["secure_aggregation"] = s.secure_aggregation  # how the result was obtained
        summary["aggregation"] = s.aggregation
        summary["busiest_client_bulk_bytes"] = {str(r + 1): n
                                                for r, n in sorted(self.busiest_bulk.items())}
        summary["pipeline_depth"] = s.pipeline_depth  # above 1: stashed weights, not exact SGD
        summary["micro_batches"] = s.micro_batches
        summary["dp"] = dp_block(s, run_epsilon(self._plan, len(self.rows)))
        if dropped:
            summary["dropped"] = [dict(drop) for drop in dropped]
        self._results.write_summary(summary)
        return summary
