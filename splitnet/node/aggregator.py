"""The aggregator (``SERVER_NUMBER``): collect round reports, pull states, FedAvg, push.

Once every client has reported round r, the aggregator pulls every client's replica states (its
own in place), averages each partition over its replicas weighted by the owners' samples
(:func:`~splitnet.learning.averaging.average_replicas`), and pushes the averaged partitions to
every client (itself last, in place). Evaluation and result files follow off the critical path
(Note: evaluation off the critical path, in :mod:`splitnet.node.recorder`).

A round report enters as JSON from a peer and is validated there
(:meth:`RoundReport.from_json`): a malformed one is refused with ProtocolError (the peer gets
INVALID_ARGUMENT) and the aggregator goes on.

Note: one round at a time. A client reports round r+1 only after it has loaded round r's
averaged model, which the aggregator pushes only once all of round r is in; so reports for any
round but the one being collected (a late duplicate, a round ahead) are refused. With
``AGGREGATION=reduce`` (:mod:`splitnet.node.reduce`) the clients load their reduced partitions
themselves and may report round r+1 before round r's answers are all in: round r+1's aggregation
then waits for round r's (a lock), so rounds are recorded in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from splitnet.errors import ProtocolError
from splitnet.learning.averaging import average_replicas
from splitnet.node.recorder import Recorder
from splitnet.node.rounds import INITIAL, MODEL
from splitnet.node.routing import Routing
from splitnet.node.secagg import average_masked
from splitnet.node.state import Background
from splitnet.plan.plan import Plan
from splitnet.telemetry.records import RoundReport
from splitnet.transport.base import BulkTransport
from splitnet.transport.messages import Blob

__all__ = ["Aggregator"]


class Aggregator:
    """Averages each round's replicas and hands the result to every client."""

    def __init__(self, plan: Plan, me: int, routing: Routing, bulk: BulkTransport,
                 own_states: Callable[[int, Mapping[int, int] | None], Awaitable[Blob]],
                 apply: Callable[[str, int, bytes], None], recorder: Recorder,
                 background: Background, *, secure: bool = False,
                 reduce: Callable[[dict[int, dict[str, torch.Tensor]]],
                                  dict[str, torch.Tensor]] | None = None,
                 pull_timeout: float | None = None) -> None:
        self.me = me
        self.clients = plan.clients  # 1..N but those dropped (plan/drop.py)
        self.num_rounds = plan.training.num_rounds
        self._owners = frozenset(plan.owners)
        self._routing = routing
        self._bulk = bulk
        self._own_states = own_states
        self._apply = apply
        self.recorder = recorder
        self._background = background
        self._reports: defaultdict[int, dict[int, RoundReport]] = defaultdict(dict)
        self._collecting = 0  # the round whose reports are awaited (Note: one round at a time)
        self.exchange_seconds: list[float] = []
        self._round_started = time.time()
        self.secure = secure  # SECURE_AGGREGATION=on: only masked sums come in (node/secagg.py)
        self._reduced = reduce  # AGGREGATION=reduce: the whole model from the answers
        self._pull_timeout = pull_timeout  # reduce: a pull lasts the holders' whole reduce
        self._one_at_a_time = asyncio.Lock()  # Note: one round at a time (reduce)

    def round_done(self, client: int, round_: int, report_json: str) -> None:
        """Take a client's report of ``round_``; average once every client has reported."""
        if client not in self.clients or not 0 <= round_ < self.num_rounds:
            raise ProtocolError(f"round report of client {client}, round {round_}: the plan has "
                                f"clients {', '.join(map(str, self.clients))} and rounds "
                                f"0..{self.num_rounds - 1}")
        if round_ != self._collecting:
            raise ProtocolError(f"round report of client {client}, round {round_}: the "
                                f"aggregator collects round {self._collecting}'s reports")
        report = RoundReport.from_json(report_json, client, round_)
        owners = [o.owner for o in report.owners]
        if owners != ([client] if client in self._owners else []):
            raise ProtocolError(f"round report of client {client}, round {round_}: owners "
                                f"{owners}, but a client reports only itself, if it owns data")
        reports = self._reports[round_]
        if client in reports:
            raise ProtocolError(f"client {client} reported round {round_} twice")
        reports[client] = report
        if len(reports) == len(self.clients):
            self._collecting = round_ + 1
            self._background.start(self._aggregate(round_))

    def resume(self, round_: int) -> None:
        """Continue after round ``round_`` (a checkpoint's): collect round ``round_ + 1`` next."""
        self._collecting = round_ + 1

    async def distribute_initial(self, state: Mapping[str, torch.Tensor]) -> None:
        """Send every client the aggregator's weights (``partition/name``), so all start alike."""
        data = await asyncio.get_running_loop().run_in_executor(None, save_safetensors,
                                                                dict(state))
        await self._push(INITIAL, 0, data)
        self._round_started = time.time()  # round 0 starts once everybody has the model

    async def _push(self, kind: str, round_: int, data: bytes) -> None:
        everyone = self.clients
        blob = self._bulk.out(kind, round_, data, sources=everyone)
        await asyncio.gather(*(self._routing.push(k, blob, len(data))
                               for k in everyone if k != self.me))
        self._apply(kind, round_, data)

    async def _pull(self, peer: int, round_: int, weights: Mapping[int, int] | None) -> Blob:
        if self._pull_timeout is None:
            return await self._routing.pull(peer, round_, weights)
        return await self._routing.pull(peer, round_, weights, timeout=self._pull_timeout)

    async def _aggregate(self, round_: int) -> None:
        async with self._one_at_a_time:
            await self._aggregate_round(round_)

    async def _aggregate_round(self, round_: int) -> None:
        loop = asyncio.get_running_loop()
        exchange_start = time.time()
        reports = self._reports.pop(round_)
        owners = [o for _, report in sorted(reports.items()) for o in report.owners]
        samples = {o.owner: o.samples for o in owners}
        reduce = self._reduced is not None
        # secure aggregation weights before masking; reduce's holders average with them
        weights = samples if self.secure or reduce else None
        blobs = await asyncio.gather(*(
            self._own_states(round_, weights) if k == self.me
            else self._pull(k, round_, weights) for k in self.clients))
        if self._reduced is not None:  # the holders averaged and loaded it already
            answers = {blob.sender: load_safetensors(blob.data) for blob in blobs}
            try:
                averaged = self._reduced(answers)
            except ProtocolError as exc:
                raise ProtocolError(f"round {round_}'s reduced partitions: {exc}") from None
            data = await loop.run_in_executor(None, save_safetensors, averaged)
            self._apply(MODEL, round_, data)
        else:
            averaged = await loop.run_in_executor(None, _average, blobs, samples, self.secure)
            data = await loop.run_in_executor(None, save_safetensors, averaged)
            await self._push(MODEL, round_, data)
        self.exchange_seconds.append(time.time() - exchange_start)
        seconds = time.time() - self._round_started
        self._round_started = time.time()
        self.recorder.record(round_, blobs, owners, averaged, seconds)


def _average(blobs: list[Blob], samples: Mapping[int, int],
             secure: bool) -> dict[str, torch.Tensor]:
    if secure:  # the sum of masked payloads: no replica is ever loaded here
        return average_masked([load_safetensors(blob.data) for blob in blobs],
                              [blob.meta for blob in blobs], samples)
    weights = {owner: float(count) for owner, count in samples.items()}
    return average_replicas((load_safetensors(blob.data) for blob in blobs), weights)
