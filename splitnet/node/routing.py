"""Routing: what carries each tensor and bulk object, and what every transfer counts.

Activations and gradients go to the client that runs the next task through the network's one
tensor transport (``ACTIVATION_TRANSPORT`` picked it when the network was built); replica states
and models go through its bulk transport (``BULK_TRANSPORT``). Every transfer is counted here:
payload bytes (what the aggregator reports per round), Prometheus metrics, and a ``transfer``
row in this client's timeline for every tensor sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from splitnet.errors import SplitnetError
from splitnet.node.state import Counters
from splitnet.plan.plan import Plan
from splitnet.telemetry.metrics import Metrics
from splitnet.telemetry.records import TimelineRow
from splitnet.transport.base import Network
from splitnet.transport.messages import Blob, TaskMessage

__all__ = ["Routing"]

log = logging.getLogger("splitnet.node")


class Routing:
    """Hands tensors and bulk objects to the network, counting each transfer."""

    def __init__(self, plan: Plan, network: Network, metrics: Metrics, counters: Counters, *,
                 activation_transport: str, bulk_transport: str,
                 bulk_timeout: float | None = None) -> None:
        self._plan = plan
        self._network = network
        self._metrics = metrics
        self.counters = counters
        self._activations = activation_transport
        self._bulk = bulk_transport
        self._bulk_timeout = bulk_timeout
        self.timeline: list[TimelineRow] = []  # transfers; the interpreter keeps compute rows
        self.opened = asyncio.Event()  # Note: tensors wait for the resume
        self.resuming = False  # this client has checkpoints: a resume may be agreed on

    @property
    def me(self) -> int:
        """Return this client's number."""
        return self._network.me

    def _kind(self, stage: int) -> str:
        return "activation" if stage <= self._plan.num_partitions else "gradient"

    # -- tensors -------------------------------------------------------------------------------

    def send(self, runner: int, msg: TaskMessage) -> None:
        """Queue an activation/gradient for ``runner`` (failures reach the node's one path)."""
        assert msg.tensor is not None
        start = time.time()
        self._network.tensors.send(runner, msg)
        end = time.time()
        nbytes = msg.tensor.numel() * msg.tensor.element_size()
        self.counters.sent += nbytes
        self._metrics.transfer(runner, self._activations, self._kind(msg.stage), nbytes,
                               end - start, sent=True)
        self.timeline.append(TimelineRow(self.me, msg.owner, msg.stage, msg.batch, msg.round,
                                         start, end, "transfer", runner, nbytes))

    async def receive(self, msg: TaskMessage, accept: Callable[[TaskMessage], None]) -> None:
        """Complete a peer's tensor and hand it to ``accept``, counting it or its refusal.

        A BitTorrent reference is fetched first (``Network.complete``); ``accept`` is the
        interpreter's admission. Either refusing counts as a rejected message.

        Note: tensors wait for the resume. A peer may start round R+1 (and send) before this
        client has agreed on R and restored its admission; while this client may resume (it has
        checkpoints), a tensor of a round after the first waits here until then. Any other
        tensor is judged at once (a fresh client refuses what does not fit the plan right away).
        """
        if self.resuming and msg.round >= 1:
            await self.opened.wait()
        try:
            await self._network.complete(msg)
            accept(msg)
        except SplitnetError:
            self.counters.rejected += 1
            self._metrics.error("rejected")
            raise
        assert msg.tensor is not None
        nbytes = msg.tensor.numel() * msg.tensor.element_size()
        self.counters.received += nbytes
        way = "torrent" if msg.torrent is not None else self._activations
        self._metrics.transfer(msg.sender, way, self._kind(msg.stage), nbytes, 0.0, sent=False)

    def refused_call(self, method: str, kind: str) -> None:
        """Count an input a listener refused itself (``kind``: auth or limit, see ``Reject``).

        A limit refusal was logged by the listener (at most once a second per peer).
        """
        self.counters.rejected += 1
        self._metrics.error(kind)
        if kind == "auth":
            log.warning("client %d rejected a call to %s without the cluster token", self.me,
                        method)

    # -- bulk ----------------------------------------------------------------------------------

    def states_blob(self, round_: int, data: bytes, meta: dict[str, int]) -> Blob:
        """Return this client's replica states as a blob for the aggregator to pull."""
        self.counters.sent += len(data)
        self.counters.bulk_sent += len(data)
        return self._network.bulk.out("states", round_, data, meta)

    def bulk_out(self, kind: str, round_: int, data: bytes) -> Blob:
        """Return a blob of this client's (inline, or a reference it seeds) for one peer."""
        return self._network.bulk.out(kind, round_, data, sources=[self.me])

    async def pull(self, peer: int, round_: int, weights: Mapping[int, int] | None = None,
                   timeout: float | None = None) -> Blob:
        """Fetch ``peer``'s replica states of ``round_``, payload included."""
        start = time.time()
        blob = await self._network.peers[peer].get_states(round_, weights, timeout=timeout)
        data = await self._network.bulk.into(blob)
        self.counters.received += len(data)
        self.counters.bulk_received += len(data)
        self._metrics.transfer(peer, self._bulk, "bulk", len(data), time.time() - start,
                               sent=False)
        return Blob(blob.kind, blob.round, blob.sender, data, blob.meta)

    async def push(self, peer: int, model: Blob, size: int) -> None:
        """Send a model blob (of ``size`` payload bytes) to ``peer``."""
        start = time.time()
        await self._network.peers[peer].put_model(model, timeout=self._bulk_timeout)
        self.counters.sent += len(model.data) or size
        self.counters.bulk_sent += len(model.data) or size
        self._metrics.transfer(peer, self._bulk, "bulk", size, time.time() - start, sent=True)

    async def take(self, blob: Blob) -> bytes:
        """Return a received model blob's payload (fetched when it is a reference)."""
        data = await self._network.bulk.into(blob)
        self.counters.received += len(data)
        self.counters.bulk_received += len(data)
        return data
