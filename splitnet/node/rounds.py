"""A client's side of every round: train, report, hand over states, load the model.

Round r on every client: its owner (if it is one) trains its shard through the pipeline; the
client reports the round to the aggregator (a :class:`RoundReport`); the aggregator pulls every
client's replica states, averages them and pushes the averaged partitions back; the client loads
them into its replicas and enters round r+1. Before round 0 the aggregator pushes the initial
model (``INITIAL_ROUND``), so that every replica starts from the same weights.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable

from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from splitnet.node.routing import Routing
from splitnet.plan.rounds import INITIAL_ROUND
from splitnet.runtime import Feeder, Interpreter, Replicas
from splitnet.telemetry.records import RoundReport, peak_rss_kib
from splitnet.transport.base import BulkTransport
from splitnet.transport.messages import Blob

__all__ = ["INITIAL", "MODEL", "Report", "Rounds"]

INITIAL, MODEL = "initial", "model"  # blob kinds: the initial model, a round's averaged model
Report = Callable[[int, str], Awaitable[None]]
"""Delivers this client's RoundReport JSON for a round to the aggregator."""


class Rounds:
    """Runs this client's rounds and keeps its replicas in step with the averaged model."""

    def __init__(self, me: int, num_rounds: int, interpreter: Interpreter, replicas: Replicas,
                 routing: Routing, bulk: BulkTransport, report: Report, *,
                 in_place: bool, on_model: Callable[[int, bytes], None] | None = None) -> None:
        self.me = me
        self.num_rounds = num_rounds
        self._interpreter = interpreter
        self._replicas = replicas
        self._routing = routing
        self._bulk = bulk
        self._report = report
        self._in_place = in_place  # the aggregator reads its own states without a transfer
        self._on_model = on_model  # round r's model is loaded, round r+1 not started (checkpoint)
        self.loaded: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.finished = asyncio.Event()

    @property
    def last_model_loaded(self) -> bool:
        """Return whether the last round's model is in place (nothing is in flight after)."""
        return self.loaded[self.num_rounds - 1].is_set()

    async def initial_model(self) -> None:
        """Wait for the aggregator's initial model."""
        await self.loaded[INITIAL_ROUND].wait()

    async def train(self, feeder: Feeder | None, start: int = 0) -> None:
        """Run every round from ``start``: train (an owner), report, wait for the model."""
        for round_ in range(start, self.num_rounds):
            self._interpreter.start_round(round_)
            owners = () if feeder is None else (await feeder.train(round_),)
            await self._report(round_, RoundReport(self.me, round_, owners).to_json())
            await self.loaded[round_].wait()

    async def states(self, round_: int) -> Blob:
        """Return this client's replica states and counters (what the aggregator pulls)."""
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, save_safetensors, self._replicas.states())
        counters = self._routing.counters
        meta = {"sent": counters.sent, "received": counters.received,
                "peak_rss_kib": peak_rss_kib(),
                "rejected": counters.rejected, "torrent_disk_bytes": self._bulk.disk_bytes()}
        if self._in_place:
            return Blob("states", round_, self.me, data, meta)
        return self._routing.states_blob(round_, data, meta)

    async def put_model(self, blob: Blob) -> None:
        """Load a pushed model (averaged partitions, or the initial model)."""
        self.apply(blob.kind, blob.round, await self._routing.take(blob))

    def apply(self, kind: str, round_: int, data: bytes) -> None:
        """Load model bytes into every replica and let the round that waits on them go on."""
        self._replicas.load_average(load_safetensors(data))
        key = INITIAL_ROUND if kind == INITIAL else round_
        if key != INITIAL_ROUND:
            self._bulk.model_applied(round_)
            if self._on_model is not None:
                self._on_model(round_, data)
        self.loaded[key].set()

    def finish(self) -> None:
        """Training is over (the aggregator said so, or this client is the aggregator)."""
        self.finished.set()
