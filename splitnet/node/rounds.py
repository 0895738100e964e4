"""A client's side of every round: train, report, hand over states, load the model.

Round r on every client: its owner (if it is one) trains its shard through the pipeline; the
client reports the round to the aggregator (a :class:`RoundReport`); the aggregator pulls every
client's replica states, averages them and pushes the averaged partitions back; the client loads
them into its replicas and enters round r+1. Before round 0 the aggregator pushes the initial
model (``INITIAL_ROUND``), so that every replica starts from the same weights.

Note: pushed models. A model is taken only from the aggregator, only the one this client awaits
(the initial model before round 0, then round r's averaged model once every earlier one is in),
and only as safetensors bytes with exactly the model's keys, shapes and dtypes and finite weights
(:meth:`Replicas.check_model`); all is checked before anything is loaded, so a refused push
(ProtocolError) changes nothing and the client keeps training. The same holds for a Finish
(only from the aggregator) and for a states pull (only for the round whose model is awaited).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from splitnet.errors import ProtocolError
from splitnet.node.reduce import Reducer
from splitnet.node.routing import Routing
from splitnet.node.secagg import SecureAggregation
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
                 in_place: bool, server: int,
                 on_model: Callable[[int, bytes], None] | None = None,
                 secagg: SecureAggregation | None = None,
                 reducer: Reducer | None = None) -> None:
        self.me = me
        self.server = server  # the aggregator: the only client that may push a model or finish
        self.num_rounds = num_rounds
        self._interpreter = interpreter
        self._replicas = replicas
        self._routing = routing
        self._bulk = bulk
        self._report = report
        self._in_place = in_place  # the aggregator reads its own states without a transfer
        self._on_model = on_model  # round r's model is loaded, round r+1 not started (checkpoint)
        self.secagg = secagg  # SECURE_AGGREGATION=on: only masked sums leave (node/secagg.py)
        self.reducer = reducer  # AGGREGATION=reduce: holders average (node/reduce.py)
        self._reducing: int | None = None  # the round whose reduce is under way
        self.loaded: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.finished = asyncio.Event()
        self.process_cpu: dict[int, float] = {}  # round → this process's CPU seconds in it

    @property
    def last_model_loaded(self) -> bool:
        """Return whether the last round's model is in place (nothing is in flight after)."""
        return self.loaded[self.num_rounds - 1].is_set()

    async def initial_model(self) -> None:
        """Wait for the aggregator's initial model."""
        await self.loaded[INITIAL_ROUND].wait()

    async def train(self, feeder: Feeder | None, start: int = 0) -> None:
        """Run every round from ``start``: train (an owner), report, wait for the model.

        A resumed run (``start`` > 0) holds the model of round ``start - 1`` already: the rounds
        before are done, and only ``start``'s states and model are awaited.
        """
        for done in range(start):
            self.loaded[done].set()
        cpu = time.process_time()
        for round_ in range(start, self.num_rounds):
            self._interpreter.start_round(round_)
            owners = () if feeder is None else (await feeder.train(round_),)
            await self._report(round_, RoundReport(self.me, round_, owners).to_json())
            await self.loaded[round_].wait()
            # Note: process CPU. Every thread's (compute worker, event loop, gRPC), user + sys,
            # from the round's start until its model is loaded; next to the steps' own CPU it
            # shows what everything but compute costs (bench placement's calibration).
            now = time.process_time()
            self.process_cpu[round_], cpu = now - cpu, now

    @property
    def awaited(self) -> int:
        """Return the round whose model this client waits for (``INITIAL_ROUND`` at first)."""
        if not self.loaded[INITIAL_ROUND].is_set():
            return INITIAL_ROUND
        return next((r for r in range(self.num_rounds) if not self.loaded[r].is_set()),
                    self.num_rounds)

    async def states(self, round_: int, weights: Mapping[int, int] | None = None) -> Blob:
        """Return this client's replica states and counters (what the aggregator pulls).

        Only the states of the round whose model is awaited are given (Note: pushed models).
        With secure aggregation, only their masked sums weighted by ``weights`` (every owner's
        sample count, from the aggregator); a pull without weights is refused.
        """
        if round_ != self.awaited:
            raise ProtocolError(f"client {self.me} refused a states pull for round {round_}: "
                                f"only round {self.awaited}'s (the round it is in) are given")
        loop = asyncio.get_running_loop()
        if self.reducer is not None:
            return await self._reduce(round_, weights)
        states = self._replicas.states()
        extra: dict[str, Any] = {}
        if self.secagg is not None:
            if weights is None:
                raise ProtocolError(f"client {self.me} refused a states pull without sample "
                                    "counts: SECURE_AGGREGATION=on sends only masked sums")
            states, extra["dtypes"] = self.secagg.payload(states, weights, round_)
        data = await loop.run_in_executor(None, save_safetensors, states)
        return self._answer(round_, data, extra)

    async def _reduce(self, round_: int, weights: Mapping[int, int] | None) -> Blob:
        """Reduce ``round_`` with the holders; answer with what the aggregator lacks.

        A client other than the aggregator has its round's model once the reduce is done (the
        aggregator loads the whole model it assembles, :meth:`apply`).
        """
        assert self.reducer is not None
        if weights is None:
            raise ProtocolError(f"client {self.me} refused a states pull without sample counts: "
                                "AGGREGATION=reduce averages with every owner's count")
        if self._reducing == round_:
            raise ProtocolError(f"client {self.me} refused a second states pull for round "
                                f"{round_}: its reduce is under way")
        self._reducing = round_
        if round_ > 0:  # round-1's states are fetched: this round's pull needed every report
            self._bulk.model_applied(round_ - 1)
        try:
            averaged = await self.reducer.reduce(round_, weights)
        finally:
            self._reducing = None
        data = await asyncio.get_running_loop().run_in_executor(
            None, save_safetensors, self.reducer.reported(averaged))
        answer = self._answer(round_, data, {})
        if not self._in_place:  # the answer's torrent stays until the next round's reduce
            self._loaded(round_, b"", drop=False)
        return answer

    def _answer(self, round_: int, data: bytes, extra: dict[str, Any]) -> Blob:
        counters = self._routing.counters
        meta = {"sent": counters.sent, "received": counters.received,
                "bulk_sent": counters.bulk_sent, "bulk_received": counters.bulk_received,
                "peak_rss_kib": peak_rss_kib(),
                "rejected": counters.rejected, "torrent_disk_bytes": self._bulk.disk_bytes(),
                **extra}
        if self._in_place:
            return Blob("states", round_, self.me, data, meta)
        return self._routing.states_blob(round_, data, meta)

    async def put_model(self, blob: Blob) -> None:
        """Load a pushed model (averaged partitions, or the initial model).

        ProtocolError, with nothing loaded, for a model this client does not await, from
        another client than the aggregator, or with wrong contents (Note: pushed models).
        """
        what = f"client {self.me} refused a {blob.kind!r} model for round {blob.round} " \
               f"from client {blob.sender}"
        self._check_push(what, blob.kind, blob.round, blob.sender)
        data = await self._routing.take(blob)
        self._check_push(what, blob.kind, blob.round, blob.sender)  # still awaited after the fetch
        try:
            model = load_safetensors(data)
        except (SafetensorError, ValueError, RuntimeError, TypeError) as exc:
            raise ProtocolError(f"{what}: its bytes are not safetensors ({exc})") from None
        try:
            self._replicas.check_model(model)
        except ProtocolError as exc:
            raise ProtocolError(f"{what}: {exc}") from None
        self.apply(blob.kind, blob.round, data, model)

    def _check_push(self, what: str, kind: str, round_: int, sender: int) -> None:
        if sender != self.server:
            raise ProtocolError(f"{what}: only the aggregator, client {self.server}, pushes models")
        awaited = self.awaited
        key = INITIAL_ROUND if kind == INITIAL else round_ if kind == MODEL else None
        if key is None or key != awaited:
            wanted = "the initial model" if awaited == INITIAL_ROUND else \
                f"round {awaited}'s averaged model"
            raise ProtocolError(f"{what}: it awaits {wanted}")

    def apply(self, kind: str, round_: int, data: bytes,
              model: dict[str, torch.Tensor] | None = None) -> None:
        """Load model bytes into every replica and let the round that waits on them go on.

        ``model``: the bytes already decoded (and checked).
        """
        self._replicas.load_average(load_safetensors(data) if model is None else model)
        if kind == INITIAL:
            self.loaded[INITIAL_ROUND].set()
        else:
            self._loaded(round_, data)

    def _loaded(self, round_: int, data: bytes, *, drop: bool = True) -> None:
        """Round ``round_``'s model is in the replicas: checkpoint, and let round+1 start.

        ``drop``: drop the round's torrents nobody needs any more (bulk ``model_applied``).
        """
        if drop:
            self._bulk.model_applied(round_)
        if self._on_model is not None:
            self._on_model(round_, data)
        self.loaded[round_].set()

    def finish(self, client: int | None = None) -> None:
        """Training is over (``client``, the aggregator, said so; None: this client is it)."""
        if client is not None and client != self.server:
            raise ProtocolError(f"client {self.me} refused a finish notice from client {client}: "
                                f"only the aggregator, client {self.server}, ends training")
        self.finished.set()
