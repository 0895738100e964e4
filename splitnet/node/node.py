"""One client end to end: the parts of a node, wired, run, and closed on every exit path.

A :class:`Node` is built from small parts with one job each (model: Flower's servicer → handler
→ state, and its ``Strategy``):

* :class:`~splitnet.node.membership.Membership` — join, plan check, heartbeats, notices;
* :class:`~splitnet.node.routing.Routing` — what carries each tensor and bulk object, counted;
* the runtime's interpreter, feeder and replicas — compute;
* :class:`~splitnet.node.rounds.Rounds` — this client's rounds and its replicas' model;
* :class:`~splitnet.node.aggregator.Aggregator` and :class:`~splitnet.node.recorder.Recorder`
  (``SERVER_NUMBER`` only) — FedAvg, evaluation, result files;
* :class:`~splitnet.node.handler.NodeHandler` — peers' calls, delegated to the parts.

The network is injected (``GrpcNetwork`` in production, ``MemoryNetwork`` in unit tests). Every
resource (network, interpreter, metrics server, result files) is entered on one
``AsyncExitStack``. Every error reaches one :class:`~splitnet.node.state.Failure` (Note: one
failure path (node)); the node then tells its peers (``Abort``) and raises it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import torch

from splitnet.config.settings import Settings
from splitnet.errors import RuntimeFailure, TransferFailed
from splitnet.node.checkpointing import AVERAGED
from splitnet.node.endpoint import endpoint_security
from splitnet.node.liveness import heartbeat
from splitnet.node.run import start_run
from splitnet.node.state import Counters, Failure
from splitnet.node.wiring import Parts, build_parts, resume_of
from splitnet.plan.plan import Plan
from splitnet.runtime import Feeder
from splitnet.runtime.snapshot import restore_replicas
from splitnet.telemetry.metrics import Metrics
from splitnet.telemetry.records import RoundRow, peak_rss_kib
from splitnet.telemetry.results import ResultsWriter
from splitnet.transport.base import Network
from splitnet.transport.listen import check_listen_host, listen_failure

__all__ = ["Node"]

log = logging.getLogger("splitnet.node")


class Node:
    """One client: serves its peers, runs its tasks, and (on the aggregator) averages rounds."""

    def __init__(self, plan: Plan, settings: Settings, network: Network) -> None:
        self.plan = plan
        self.settings = settings
        self.network = network
        self.me = network.me
        self.failure = Failure()
        self.counters = Counters()
        self.metrics = Metrics(self.me)
        self.results = ResultsWriter(Path(settings.output.results_dir))
        self.stopped = False  # by a signal: never restarted
        self.restarts = False  # a failure restarts this client (splitnet.node.rejoin)
        self.lost_since: float | None = None  # monotonic time of the loss this node recovers
        self.joined = False  # every peer joined and the round to go on from agreed
        self.drop_window: float | None = None  # Note: drop window (node/membership.py)
        self.drops: list[dict[str, Any]] = []  # what each drop changed (plan/drop.py)

    @property
    def rejected(self) -> int:
        """Return how many peer messages and calls this client refused."""
        return self.counters.rejected

    def stop(self, reason: str) -> None:
        """Stop now (a signal): peers are told, results written."""
        self.stopped = True
        self.failure.fail(RuntimeFailure(f"client {self.me} {reason}"))

    async def run(self) -> dict[str, Any]:
        """Train to the end; return the summary (aggregator) or this client's facts."""
        async with AsyncExitStack() as stack:
            parts = await self._open(stack)
            summary = await self._supervise(parts)
        return summary

    async def _open(self, stack: AsyncExitStack) -> Parts:
        """Enter every resource on ``stack``, build the parts and start serving peers."""
        resume = resume_of(self.plan, self.settings, self.me)
        resume.scan()  # before serving: joins announce its rounds
        start_run(self.results, self.settings.output.run_id, resume,
                  aggregator=self.me == self.plan.training.server_number)
        await stack.enter_async_context(self.network)
        self._serve_metrics(stack)
        parts = build_parts(self.plan, self.settings, self.network, self.metrics,
                            self.counters, self.results, self.failure, resume)
        parts.membership.rejoin = self.restarts
        parts.membership.drop_window = self.drop_window
        parts.routing.resuming = bool(resume.own)  # Note: tensors wait for the resume
        stack.callback(parts.interpreter.close)
        if parts.checkpointer is not None:
            stack.callback(parts.checkpointer.close)
        stack.callback(self._write_client_files, parts)
        await self.network.serve(parts.handler,
                                 lambda error: self._transfer_failed(parts, error),
                                 parts.routing.refused_call)
        return parts

    def _serve_metrics(self, stack: AsyncExitStack) -> None:
        port, host = self.settings.output.metrics_port, self.settings.network.listen_host
        if not port:
            return
        check_listen_host(host)  # Note: bind failures (transport/listen.py)
        try:
            server, thread = self.metrics.serve(port, host, endpoint_security(self.settings))
        except OSError as exc:  # Note: bind failures (transport/listen.py)
            raise listen_failure(self.me, "metrics", "METRICS_PORT", host, port, exc) from None
        stack.callback(thread.join, 5.0)
        stack.callback(server.server_close)
        stack.callback(server.shutdown)

    def _transfer_failed(self, parts: Parts, error: TransferFailed) -> None:
        # Once the last model is loaded nothing is in flight: a peer that exits then ends the
        # tensor streams to it, which is no failure.
        if not parts.rounds.last_model_loaded:
            self.failure.fail(error)

    def _write_client_files(self, parts: Parts) -> None:
        if self.results.run_id is None:  # never joined the aggregator: no run to write into
            log.info("client %d writes no result files: it never learnt the run id", self.me)
            return
        rows = sorted([*parts.interpreter.timeline, *parts.routing.timeline],
                      key=lambda row: row.start)
        self.results.write_timeline(self.me, rows, kept_through=parts.resume.round)
        self.results.write_client(self.me, {
            "client": self.me, "payload_bytes_sent": self.counters.sent,
            "process_cpu_seconds": {str(r): round(t, 6)
                                    for r, t in parts.rounds.process_cpu.items()},
            "peak_rss_mib": round(peak_rss_kib() / 1024, 1)})

    async def _supervise(self, parts: Parts) -> dict[str, Any]:
        """Run the main task next to the background ones until it ends or something fails."""
        main = asyncio.ensure_future(self._main(parts))
        parts.background.start(parts.interpreter.run()).add_done_callback(self._ended_early)
        failed = asyncio.ensure_future(self.failure.wait())
        try:
            await asyncio.wait([main, failed], return_when=asyncio.FIRST_COMPLETED)
            if main.done() and (exc := main.exception()) is not None:
                self.failure.fail(exc)  # the main task's own error (a peer's may come first)
            error = self.failure.error
            if error is not None and self._tell_peers():
                try:
                    await parts.membership.abort_all(str(error))
                except Exception as exc:  # telling peers is best effort; raise the first error
                    log.warning("client %d could not tell its peers: %s", self.me, exc)
                raise error
            if error is not None:
                raise error
            return main.result()
        finally:
            main.cancel()
            failed.cancel()
            parts.background.cancel()

    def _tell_peers(self) -> bool:
        """Return whether peers hear of this client's failure (Abort): not if it restarts."""
        return not self.restarts or self.stopped

    def _ended_early(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is None:  # an exception is reported
            self.failure.fail(RuntimeFailure(f"client {self.me}: the compute loop ended "
                                             "unexpectedly"))

    async def _main(self, parts: Parts) -> dict[str, Any]:
        start = time.time()
        await parts.membership.join_all()
        resumed = self._agree(parts)
        parts.background.start(heartbeat(self.network, self.metrics, self.failure,
                                         self.settings.network.peer_timeout,
                                         parts.rounds.finished))
        if parts.aggregator is not None:
            await parts.local_data.load()  # Note: data after join
            await parts.aggregator.distribute_initial(_first_model(parts))
        await parts.rounds.initial_model()
        feeder = await parts.feeder()
        if resumed is not None:
            _restore(parts, feeder, self.me)
        await parts.rounds.train(feeder, 0 if resumed is None else resumed + 1)
        summary: dict[str, Any] = {"client": self.me}
        if parts.aggregator is not None:
            summary = await self._finish(parts, time.time() - start)
        else:
            await parts.rounds.finished.wait()
        if parts.checkpointer is not None:
            await parts.checkpointer.drain()  # the last round's checkpoint too
        await asyncio.sleep(self.settings.output.metrics_hold)  # a last scrape sees the end
        return summary

    def _agree(self, parts: Parts) -> int | None:
        """Agree on the round to resume after (None: round 0); restore admission; open inputs."""
        resume = parts.resume
        try:
            round_ = resume.agree(self.network.peers)
            if round_ is not None:
                latest = {owner: batch for owner, batch in resume.latest_batches().items()
                          if owner in self.plan.owners}  # a dropped owner's tasks are gone
                parts.interpreter.resume(round_, latest)
                if parts.aggregator is not None:
                    parts.aggregator.resume(round_)
        except ValueError as exc:
            raise RuntimeFailure(f"client {self.me} cannot resume after round {resume.round} "
                                 f"from {resume.store.folder}: {exc}; set RESUME=never to start "
                                 "from round 0") from None
        parts.routing.opened.set()
        self.joined = True
        self.metrics.dropped_clients.labels(self.metrics.client).set(len(self.plan.dropped))
        for drop in self.drops:  # the first round without them, numbered as in metrics.csv
            drop.setdefault("from_round", round_ + 2 if round_ is not None else 1)
        if self.lost_since is not None:
            seconds = time.monotonic() - self.lost_since
            self.metrics.recovery_seconds.labels(self.metrics.client).set(seconds)
            log.info("client %d rejoined every peer %.1fs after the loss", self.me, seconds)
        return round_

    async def _finish(self, parts: Parts, seconds: float) -> dict[str, Any]:
        assert parts.aggregator is not None
        recorder = parts.aggregator.recorder
        await recorder.drain()
        parts.rounds.finish()
        await parts.membership.finish_all("training complete")
        s = self.settings.transport
        return recorder.summary(seconds, parts.aggregator.exchange_seconds,
                                bulk_transport=s.bulk_transport,
                                activation_transport=s.activation_transport,
                                dropped=self.drops)


def _first_model(parts: Parts) -> dict[str, torch.Tensor]:
    """Return the model every replica starts from: fresh, or the checkpoint's averaged one."""
    assert parts.aggregator is not None
    recorder, checkpoint = parts.aggregator.recorder, parts.resume.model_checkpoint
    if checkpoint is None:
        recorder.start()
        return parts.initial_model()
    averaged = {key[len(AVERAGED):]: value for key, value in checkpoint.tensors.items()
                if key.startswith(AVERAGED)}
    try:
        rows = [RoundRow(**row) for row in checkpoint.extra.get("rows", [])]
    except TypeError as exc:
        raise RuntimeFailure(f"client {checkpoint.client}: the result rows of its checkpoint of "
                             f"round {checkpoint.round} do not fit ({exc}); set RESUME=never to "
                             "start from round 0") from None
    recorder.start(rows, averaged, checkpoint.extra.get("torrent_disk_history", []))
    return averaged


def _restore(parts: Parts, feeder: Feeder | None, me: int) -> None:
    """Load this client's optimizer states (and weights) and its owner's batch position."""
    checkpoint = parts.resume.checkpoint
    assert checkpoint is not None
    try:
        if checkpoint.fingerprint == parts.plan.fingerprint:
            restore_replicas(parts.interpreter.replicas, checkpoint.tensors, checkpoint.extra)
        else:  # the plan before a drop: replicas hold the averaged model, optimizers start anew
            log.info("client %d: checkpoint of round %d is of the plan before the drop; its "
                     "replicas start from the averaged model with fresh optimizer states", me,
                     checkpoint.round)
        if feeder is not None:
            feeder.resume(parts.resume.latest_batches()[me])
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeFailure(f"client {me} cannot resume from its checkpoint of round "
                             f"{checkpoint.round} in {parts.resume.store.folder}: {exc}; set "
                             "RESUME=never to start from round 0") from None
