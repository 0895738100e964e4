"""Typed records of a run: owner stats, the round report, timeline and metrics rows.

Each has one format, written down here: :class:`RoundReport` is the JSON a client sends the
aggregator when its round is done (validated where it enters: :meth:`RoundReport.from_json`),
:class:`TimelineRow` is one line of ``timeline-client{n}.csv`` and :class:`RoundRow` one line of
``metrics.csv``. :func:`run_summary` builds ``summary.json`` for a splitnet run, the baseline and
the pipelining benchmark.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from splitnet.errors import ProtocolError

__all__ = ["METRIC_COLUMNS", "TIMELINE_COLUMNS", "Exchange", "OwnerStats", "Pipelined",
           "RoundReport", "RoundRow", "TimelineRow", "Trained", "peak_rss_kib", "run_summary"]

METRIC_COLUMNS = ("round", "test_accuracy", "f1_macro", "test_loss", "train_loss",
                  "round_seconds", "bytes_sent", "bytes_received", "samples")
TIMELINE_COLUMNS = ("client", "owner", "stage", "batch", "round", "start", "end", "kind", "peer",
                    "bytes", "cpu")


@dataclass
class OwnerStats:
    """What one owner did in one round (the owner feeder counts into it)."""

    owner: int
    samples: int = 0
    batches: int = 0
    loss_sum: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the stats as JSON data."""
        return {"owner": self.owner, "samples": self.samples, "batches": self.batches,
                "loss_sum": self.loss_sum}

    @classmethod
    def from_dict(cls, data: object, where: str) -> OwnerStats:
        """Validate JSON data; raise :class:`ProtocolError` naming ``where`` and the field."""
        if not isinstance(data, dict):
            raise ProtocolError(f"{where}: expected an object, got {_shown(data)}")
        owner = _integer(data, "owner", where)
        if owner < 1:
            raise ProtocolError(f"{where}.owner: expected a client number >= 1, got {owner}")
        loss_sum = _field(data, "loss_sum", where)
        if isinstance(loss_sum, bool) or not isinstance(loss_sum, (int, float)):
            raise ProtocolError(f"{where}.loss_sum: expected a number, got {_shown(loss_sum)}")
        if loss_sum < 0:  # NaN passes: a diverging run is recorded, not refused
            raise ProtocolError(f"{where}.loss_sum: expected >= 0, got {loss_sum}")
        return cls(owner, _integer(data, "samples", where), _integer(data, "batches", where),
                   float(loss_sum))


@dataclass(frozen=True)
class RoundReport:
    """A client's "round done": the stats of the owners it trained (none for a helper).

    On the wire (``RoundDone.stats_json``) it is ``{"owners": [OwnerStats.as_dict(), ...]}``;
    the client and the round travel beside it.
    """

    client: int
    round: int
    owners: tuple[OwnerStats, ...] = ()

    def to_json(self) -> str:
        """Return the report's JSON text."""
        return json.dumps({"owners": [o.as_dict() for o in self.owners]})

    @classmethod
    def from_json(cls, text: str, client: int, round_: int) -> RoundReport:
        """Parse and validate ``text``; raise :class:`ProtocolError` naming the bad field."""
        where = f"round report of client {client}, round {round_}"
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"{where}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ProtocolError(f"{where}: expected a JSON object, got {_shown(data)}")
        owners = _field(data, "owners", where)
        if not isinstance(owners, list):
            raise ProtocolError(f"{where}: owners: expected a list, got {_shown(owners)}")
        stats = tuple(OwnerStats.from_dict(o, f"{where}: owners[{i}]")
                      for i, o in enumerate(owners))
        numbers = [s.owner for s in stats]
        if len(set(numbers)) != len(numbers):
            raise ProtocolError(f"{where}: owners: an owner is listed twice in {numbers}")
        return cls(client, round_, stats)


@dataclass(frozen=True)
class TimelineRow:
    """One compute step (``kind="compute"``) or sent tensor (``"transfer"``, to ``peer``).

    A step runs one batch (or micro-batch unit) through a whole run of an owner's partitions;
    ``stage`` is the task it starts at. ``round`` counts from 0 (``metrics.csv`` from 1).

    ``cpu``: a compute step's thread CPU seconds (what other work on the host does not inflate,
    unlike ``end - start``; ``bench placement`` calibrates on it), k times that for a client
    slowed k times by the test-only ``SPLITNET_TEST_SLOWDOWN``; 0 for a transfer.
    """

    client: int
    owner: int
    stage: int
    batch: int
    round: int
    start: float  # seconds since the epoch
    end: float
    kind: str
    peer: int | None
    nbytes: int
    cpu: float = 0.0

    def as_csv(self) -> list[str]:
        """Return the row's cells in :data:`TIMELINE_COLUMNS` order (times to microseconds)."""
        return [str(self.client), str(self.owner), str(self.stage), str(self.batch),
                str(self.round), f"{self.start:.6f}", f"{self.end:.6f}", self.kind,
                "" if self.peer is None else str(self.peer), str(self.nbytes),
                f"{self.cpu:.6f}"]


@dataclass(frozen=True)
class RoundRow:
    """One line of ``metrics.csv``: the model after ``round`` rounds (1-based), evaluated."""

    round: int
    test_accuracy: float
    f1_macro: float
    test_loss: float
    train_loss: float
    round_seconds: float
    bytes_sent: int
    bytes_received: int
    samples: int

    @classmethod
    def measured(cls, round_: int, metrics: Mapping[str, float], *, loss_sum: float,
                 batches: int, seconds: float, bytes_sent: int, bytes_received: int,
                 samples: int) -> RoundRow:
        """Build the row of training round ``round_`` (0-based), rounded as written.

        ``metrics`` is :func:`splitnet.learning.evaluation.evaluate`'s result; the train loss is
        ``loss_sum / batches``; scores and losses keep 6 decimals, seconds 3.
        """
        return cls(round_ + 1, round(metrics["accuracy"], 6), round(metrics["f1_macro"], 6),
                   round(metrics["loss"], 6), round(loss_sum / max(batches, 1), 6),
                   round(seconds, 3), bytes_sent, bytes_received, samples)

    def as_csv(self) -> list[Any]:
        """Return the row's values in :data:`METRIC_COLUMNS` order (for ``csv.writer``)."""
        return [getattr(self, column) for column in METRIC_COLUMNS]


@dataclass(frozen=True)
class Trained:
    """What a run that evaluates every round adds to its summary (splitnet, the baseline)."""

    fingerprint: str
    clients: int
    rows: Sequence[RoundRow]  # every round's metrics.csv row, in order
    total_seconds: float
    model_bytes_on_disk: int


@dataclass(frozen=True)
class Exchange:
    """How a splitnet run moved tensors and models (the aggregator's summary only)."""

    bulk_transport: str
    activation_transport: str
    exchange_seconds: Sequence[float]  # per round: pull states, average, push the model
    torrent_disk_bytes: Mapping[int, int]  # per client, after the last round
    torrent_disk_bytes_by_round: Sequence[int]


@dataclass(frozen=True)
class Pipelined:
    """What the ``torch.distributed.pipelining`` benchmark measured."""

    processes: int
    microbatches: int
    train_seconds: float
    samples: int
    epochs: int
    batches: int
    payload_bytes_sent: int


def peak_rss_kib() -> int:
    """Return this process's peak resident set size in KiB (Linux ``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_summary(model: str, dataset: str, peak_rss: Mapping[int, float], *,
                trained: Trained | None = None, exchange: Exchange | None = None,
                pipelined: Pipelined | None = None) -> dict[str, Any]:
    """Return ``summary.json``'s content: exactly one of ``trained`` and ``pipelined``.

    ``peak_rss`` maps each process (client, or rank + 1) to its peak RSS in KiB; the summary
    shows MiB. Throughput is samples over the training seconds (for ``trained``, the sum of the
    rows' round seconds).
    """
    if (trained is None) == (pipelined is None):
        raise ValueError("a run summary takes exactly one of trained= and pipelined=")
    if exchange is not None and trained is None:
        raise ValueError("exchange= goes with trained=")
    summary: dict[str, Any] = {"model": model, "dataset": dataset}
    if trained is not None:
        last = trained.rows[-1]
        summary = {"fingerprint": trained.fingerprint, **summary, "clients": trained.clients,
                   "rounds": len(trained.rows), "test_accuracy": last.test_accuracy,
                   "f1_macro": last.f1_macro, "test_loss": last.test_loss,
                   "train_loss": last.train_loss,
                   "total_seconds": round(trained.total_seconds, 3)}
        seconds = sum(r.round_seconds for r in trained.rows)
        samples = sum(r.samples for r in trained.rows)
    else:
        assert pipelined is not None
        summary.update(processes=pipelined.processes, microbatches=pipelined.microbatches)
        seconds, samples = pipelined.train_seconds, pipelined.samples
    summary["train_seconds"] = round(seconds, 3)
    if pipelined is not None:
        summary["samples"] = samples
    summary["samples_per_second"] = round(samples / max(seconds, 1e-9), 2)
    if trained is not None:
        summary["bytes_sent"] = sum(r.bytes_sent for r in trained.rows)
        summary["model_bytes_on_disk"] = trained.model_bytes_on_disk
    if pipelined is not None:
        summary.update(epochs=pipelined.epochs, batches=pipelined.batches,
                       payload_bytes_sent=pipelined.payload_bytes_sent)
    if exchange is not None:
        summary.update(
            bulk_transport=exchange.bulk_transport,
            activation_transport=exchange.activation_transport,
            exchange_seconds=[round(x, 3) for x in exchange.exchange_seconds],
            torrent_disk_bytes={str(k): v for k, v in sorted(exchange.torrent_disk_bytes.items())},
            torrent_disk_bytes_by_round=list(exchange.torrent_disk_bytes_by_round))
    summary["peak_rss_mib"] = {str(k): round(kib / 1024, 1) for k, kib in sorted(peak_rss.items())}
    return summary


def _field(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ProtocolError(f"{where}: missing {key!r}")
    return data[key]


def _integer(data: dict[str, Any], key: str, where: str) -> int:
    value = _field(data, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{where}.{key}: expected an integer, got {_shown(value)}")
    if value < 0:
        raise ProtocolError(f"{where}.{key}: expected >= 0, got {value}")
    return value


def _shown(value: object) -> str:
    return f"{repr(value)[:40]} ({type(value).__name__})"
