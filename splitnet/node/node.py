"""One client end to end: join, rounds, aggregation (on ``SERVER_NUMBER``), heartbeats, shutdown.

Round r on every client: its owner (if it is one) trains its shard through the pipeline; it tells
the aggregator it is done; the aggregator, once every client is done, pulls every replica's
state, averages each partition (sample-weighted FedAvg), evaluates the averaged model on the
test set, writes the round's results and sends the averaged partitions to every client, which
loads them into its replicas and enters round r+1. After the last round the aggregator sends
``Finish``. A client that fails tells its peers (``Abort``); a peer that stops answering for
``PEER_TIMEOUT`` seconds makes the others stop with an error naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from splitnet.errors import PeerUnavailable, PlanMismatch, ProtocolError, RuntimeFailure
from splitnet.learning.averaging import fedavg
from splitnet.learning.data import dataset_spec, load_dataset, owner_data
from splitnet.learning.evaluation import evaluate
from splitnet.learning.models import build_partitions, compose
from splitnet.plan.plan import Plan, describe_difference
from splitnet.runtime.interpreter import TaskRunner
from splitnet.telemetry.metrics import Metrics
from splitnet.telemetry.results import ResultsWriter
from splitnet.transport.bulk import Bulk
from splitnet.transport.channel import TensorChannel
from splitnet.transport.client import PeerClient
from splitnet.transport.codec import decode_tensor, encode_tensor
from splitnet.transport.messages import Blob, TaskMessage
from splitnet.transport.server import start_server
from splitnet.transport.torrent import TorrentRef

__all__ = ["Node", "NodeOptions"]

log = logging.getLogger("splitnet.node")


@dataclass(frozen=True)
class NodeOptions:
    """How one client reaches its peers."""

    me: int
    addresses: Sequence[str]  # addresses[k-1] is client k's host:port
    token: str
    listen_host: str = "0.0.0.0"
    results_dir: Path = Path("results")


class Node:
    """One client: serves peers, runs its tasks, and (on the aggregator) averages rounds."""

    def __init__(self, plan: Plan, options: NodeOptions) -> None:
        self.plan = plan
        self.opt = options
        self.me = options.me
        self.settings = plan.settings
        self.is_server = self.me == self.settings.server_number
        self.sent_bytes = 0
        self.received_bytes = 0
        self.rejected = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Train to the end; return the summary (aggregator) or this client's facts."""
        loop = asyncio.get_running_loop()
        self.failure: asyncio.Future[BaseException] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self._model_loaded: dict[int, asyncio.Future[None]] = defaultdict(loop.create_future)
        self._round_done: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
        s = self.settings
        parts = build_partitions(
            s.model, dataset_spec(s), s.seed, s.bert_model, s.bert_pretrained)
        self.metrics = Metrics(self.me)
        if s.metrics_port:
            try:
                self.metrics.serve(s.metrics_port, self.opt.listen_host)
            except OSError as exc:
                raise RuntimeFailure(f"client {self.me} cannot serve metrics on "
                                     f"{self.opt.listen_host}:{s.metrics_port} ({exc}); set "
                                     "METRICS_PORT to a free port, or 0 to turn metrics off"
                                     ) from None
        self.runner = TaskRunner(self.plan, self.me, parts, self._send_tensor, self.metrics)
        self.peers = {k: PeerClient(k, address, self.opt.token, self.me, s.peer_timeout)
                      for k, address in enumerate(self.opt.addresses, 1) if k != self.me}
        for peer in self.peers.values():
            peer.on_stream_error = self._on_stream_error
        self.bulk = Bulk(self.me, s.bulk_transport, s.torrent_timeout,
                         host=self.opt.listen_host, port=s.torrent_port, utp=s.torrent_utp,
                         activations=s.activation_transport == "torrent",
                         torrent_min_bytes=int(s.bulk_torrent_min_mib * 1024 * 1024))
        self._bulk_timeout = s.torrent_timeout + s.peer_timeout
        self.channel = TensorChannel(self.me, self.opt.token, self.tensor, self._on_reject)
        self.channel.on_error = self._on_stream_error
        self.tensor_port = await self.channel.start(self.opt.listen_host, s.tensor_port)
        port = int(self.opt.addresses[self.me - 1].rsplit(":", 1)[1])
        self.server, _ = await start_server(self, self.opt.listen_host, port, self.opt.token,
                                            on_reject=self._on_reject)
        self.results = ResultsWriter(self.opt.results_dir)
        background: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self.runner.compute_loop())]
        main = asyncio.ensure_future(self._main(background))
        watch: list[asyncio.Future[Any]] = [main, self.failure, self.runner.failure, *background]
        try:
            await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            error = self._first_error(main, background)
            if error is not None:
                await self._broadcast_abort(str(error))
                raise error
            return main.result()
        finally:
            for task in [main, *background]:
                task.cancel()
            self.results.write_timeline(self.me, self.runner.timeline)
            self.results.write_client(self.me, {
                "client": self.me, "payload_bytes_sent": self.sent_bytes,
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                      1)})
            self.runner.close()
            await self.channel.aclose()
            self.bulk.close()
            await self.server.stop(grace=0.5)
            for peer in self.peers.values():
                await peer.aclose()

    def _first_error(self, main: asyncio.Future[Any],
                     background: list[asyncio.Future[Any]]) -> BaseException | None:
        for future in (self.failure, self.runner.failure):
            if future.done():
                return future.result()
        for task in (main, *background):
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        if not main.done():
            return RuntimeFailure(f"client {self.me}: a background task ended unexpectedly")
        return None

    def stop(self, reason: str) -> None:
        """Stop now (a signal): peers are told, results written."""
        if hasattr(self, "failure"):
            self._fail(RuntimeFailure(f"client {self.me} {reason}"))

    def _on_stream_error(self, error: Exception) -> None:
        # Once the last model is loaded nothing is in flight: a peer that exits then ends the
        # tensor streams to it, which is no failure.
        if not self._model_loaded[self.settings.num_rounds - 1].done():
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        if not self.failure.done():
            self.failure.set_result(error)

    async def _main(self, background: list[asyncio.Future[Any]]) -> dict[str, Any]:
        s = self.settings
        start = time.time()
        await self._join_all()
        background.append(asyncio.ensure_future(self._heartbeat()))
        if self.is_server:
            self._prepare_aggregator()
            await self._distribute_initial_model()
            self.round_started = time.time()  # round 1 starts once everybody has the model
        await self._model_loaded[-1]
        data = None
        if self.me in self.plan.owners:
            dataset = self.dataset if self.is_server else load_dataset(s)  # read it once
            data = owner_data(dataset, self.plan.shard_of(self.me), s, self.plan.num_shards)
        for round_ in range(s.num_rounds):
            self.runner.start_round(round_)
            stats = []
            if data is not None:
                stats.append((await self.runner.train_owner(self.me, data, round_)).as_dict())
            await self._report_round(round_, stats)
            await self._model_loaded[round_]
        if self.is_server:
            summary = await self._finish(time.time() - start)
        else:
            await self.finished
            summary = {"client": self.me}
        await asyncio.sleep(s.metrics_hold)  # a last scrape sees the final values
        return summary

    # -- join and liveness ---------------------------------------------------------------------

    async def _join_all(self) -> None:
        await asyncio.gather(*(self._join(peer) for peer in self.peers.values()))
        log.info("client %d joined %d peer(s); plan %s", self.me, len(self.peers),
                 self.plan.fingerprint)

    async def _join(self, peer: PeerClient) -> None:
        deadline = time.monotonic() + self.settings.join_timeout
        delay = 0.05
        while True:
            try:
                fingerprint, facts, port, tensor_port = await peer.join(
                    self.plan.fingerprint, self.plan.facts(), timeout=5.0,
                    torrent_port=self.bulk.port, tensor_port=self.tensor_port)
                break
            except PeerUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise PeerUnavailable(
                        f"client {peer.number} ({peer.address}) did not answer within "
                        f"JOIN_TIMEOUT={self.settings.join_timeout:g}s: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if fingerprint != self.plan.fingerprint:
            raise PlanMismatch(self._mismatch(peer.number, facts))
        self._learn_ports(peer.number, port, tensor_port)

    def _learn_ports(self, client: int, torrent_port: int, tensor_port: int) -> None:
        host = self.opt.addresses[client - 1].rsplit(":", 1)[0].strip("[]")
        self.bulk.learn(client, host, torrent_port)
        self.channel.learn(client, host, tensor_port)

    def _mismatch(self, other: int, facts: dict[str, Any]) -> str:
        return (f"client {other}'s plan differs from client {self.me}'s in: "
                f"{describe_difference(self.plan.facts(), facts, self.me, other)}")

    async def _heartbeat(self) -> None:
        timeout = self.settings.peer_timeout
        interval = min(1.0, timeout / 4)
        last_ok = {k: time.monotonic() for k in self.peers}

        async def ping(k: int, peer: PeerClient) -> bool:
            try:
                await peer.ping(timeout=interval)
            except (PeerUnavailable, RuntimeFailure):
                self.metrics.error("timeout")
                return False
            last_ok[k] = time.monotonic()
            return True

        m = self.metrics
        while not self.finished.done():
            answered = await asyncio.gather(*(ping(k, p) for k, p in self.peers.items()))
            m.peers_up.labels(m.client).set(sum(answered))
            self._torrent_metrics()
            now = time.monotonic()
            for k, seen in last_ok.items():
                if now - seen > timeout and not self.finished.done():
                    self._fail(PeerUnavailable(
                        f"client {k} ({self.peers[k].address}) stopped answering: no reply for "
                        f"{now - seen:.1f}s (PEER_TIMEOUT={timeout:g}s)"))
                    return
            await asyncio.sleep(interval)

    def _torrent_metrics(self) -> None:
        if self.bulk.session is None:
            return
        stats = self.bulk.session.stats()
        m = self.metrics
        m.torrent_peers.labels(m.client).set(stats["peers"])
        m.torrent_upload_rate.labels(m.client).set(stats["upload_rate"])
        m.torrent_download_rate.labels(m.client).set(stats["download_rate"])
        m.torrent_served.labels(m.client).set(stats["uploaded"])

    def _on_reject(self, method: str) -> None:
        self.rejected += 1
        self.metrics.error("auth")
        log.warning("client %d rejected a call to %s without the cluster token", self.me, method)

    async def _broadcast_abort(self, reason: str) -> None:
        async def tell(peer: PeerClient) -> None:
            with contextlib.suppress(Exception):
                await peer.abort(f"{reason.splitlines()[0]}")

        await asyncio.wait_for(asyncio.gather(*(tell(p) for p in self.peers.values())), 6.0)

    # -- PeerHandler ---------------------------------------------------------------------------

    async def join(self, client: int, fingerprint: str, facts: dict[str, Any],
                   torrent_port: int, tensor_port: int) -> tuple[str, dict[str, Any], int, int]:
        """Accept a joining peer; refuse it (and stop) if its plan differs."""
        if fingerprint != self.plan.fingerprint:
            error = PlanMismatch(self._mismatch(client, facts))
            self._fail(error)
            raise error
        if 1 <= client <= self.plan.num_clients and client != self.me:
            self._learn_ports(client, torrent_port, tensor_port)
        return self.plan.fingerprint, self.plan.facts(), self.bulk.port, self.tensor_port

    async def ping(self, client: int) -> int:
        """Answer a liveness check with the current round."""
        return max(self.runner.round, 0)

    async def tensor(self, msg: TaskMessage) -> None:
        """Queue a peer's activation or gradient (ProtocolError if it does not fit the plan)."""
        try:
            if msg.torrent is not None:
                await self._fetch_tensor(msg)
            self.runner.accept(msg)
        except Exception:
            self.rejected += 1
            self.metrics.error("rejected")
            raise
        assert msg.meta is not None
        self.received_bytes += msg.meta.nbytes
        way = "torrent" if msg.torrent else self.settings.activation_transport
        self.metrics.transfer(msg.sender, way, self._kind(msg.stage), msg.meta.nbytes, 0.0,
                              sent=False)

    def _kind(self, stage: int) -> str:
        return "activation" if stage <= self.plan.num_partitions else "gradient"

    async def _fetch_tensor(self, msg: TaskMessage) -> None:
        assert msg.torrent is not None and msg.meta is not None
        if self.bulk.session is None or msg.sender not in self.bulk.addresses:
            raise ProtocolError(f"client {self.me} takes no activations over BitTorrent "
                                f"from client {msg.sender}")
        ref = TorrentRef.from_json(msg.torrent)
        if ref.size != msg.meta.nbytes:
            raise ProtocolError(f"torrent of {ref.size} bytes for a tensor of "
                                f"{msg.meta.nbytes}")
        msg.tensor = decode_tensor(msg.meta, await self.bulk.fetch_tensor_bytes(ref, msg.sender))

    def _send_tensor(self, runner: int, msg: TaskMessage) -> Awaitable[None] | None:
        """Send an activation/gradient; return what to await, or None when it is queued."""
        if self.bulk.activations:
            return self._send_by_torrent(runner, msg)
        start = time.time()
        if self.settings.activation_transport == "direct":
            self.channel.send(runner, msg)  # Note: direct channel
        else:
            self.peers[runner].stream_tensor(msg)
        self._sent_tensor(runner, msg, start)
        return None

    async def _send_by_torrent(self, runner: int, msg: TaskMessage) -> None:
        start = time.time()
        assert msg.tensor is not None
        meta, data = encode_tensor(msg.tensor)
        ref = self.bulk.publish_tensor_bytes(f"act-{msg.owner}-{msg.stage}-{msg.batch}.bin", data)
        reference = TaskMessage(msg.owner, msg.stage, msg.batch, msg.round, msg.sender, None,
                                ref.to_json(), meta)
        try:
            await self.peers[runner].send_tensor(reference, timeout=self._bulk_timeout)
        finally:
            self.bulk.forget(ref.info_hash)
        self._sent_tensor(runner, msg, start)

    def _sent_tensor(self, runner: int, msg: TaskMessage, start: float) -> None:
        assert msg.tensor is not None
        nbytes = msg.tensor.numel() * msg.tensor.element_size()
        self.sent_bytes += nbytes
        end = time.time()
        self.metrics.transfer(runner, self.settings.activation_transport,
                              self._kind(msg.stage), nbytes, end - start, sent=True)
        self.runner.timeline.append((self.me, msg.owner, msg.stage, msg.batch, msg.round,
                                     f"{start:.6f}", f"{end:.6f}", "transfer", runner, nbytes))

    async def round_done(self, client: int, round_: int, stats: dict[str, Any]) -> None:
        """Record that a client finished ``round_`` (aggregator); average once all have."""
        if not self.is_server:
            raise RuntimeFailure(f"client {self.me} is not the aggregator")
        self._round_done[round_][client] = stats
        if len(self._round_done[round_]) == self.plan.num_clients:
            task = asyncio.ensure_future(self._aggregate(round_))
            task.add_done_callback(self._check_aggregation)

    def _check_aggregation(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            self._fail(error)

    async def get_states(self, round_: int) -> Blob:
        """Return this client's replica states and counters."""
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, save_safetensors, self.runner.states())
        meta = {"sent": self.sent_bytes, "received": self.received_bytes,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "rejected": self.rejected, "torrent_disk_bytes": self.bulk.disk_bytes()}
        if self.is_server:  # the aggregator reads its own states in place
            return Blob("states", round_, self.me, data, meta)
        self.sent_bytes += len(data)
        return self.bulk.out("states", round_, data, meta)

    async def put_model(self, blob: Blob) -> None:
        """Load averaged partitions (or the initial model) and move on to the next round."""
        data = await self.bulk.into(blob)
        self.received_bytes += len(data)
        self._apply_model(blob.kind, blob.round, data)

    def _apply_model(self, kind: str, round_: int, data: bytes) -> None:
        self.runner.load_average(load_safetensors(data))
        key = -1 if kind == "initial" else round_
        if key >= 0:
            self.bulk.model_applied(round_)
        future = self._model_loaded[key]
        if not future.done():
            future.set_result(None)

    async def finish(self, client: int, reason: str) -> None:
        """End this client: the aggregator says training is over."""
        if not self.finished.done():
            self.finished.set_result(None)

    async def abort(self, client: int, reason: str) -> None:
        """Stop too, naming the peer that stopped because of an error."""
        self._fail(RuntimeFailure(f"client {client} stopped: {reason}"))

    # -- aggregation (SERVER_NUMBER only) ------------------------------------------------------

    def _prepare_aggregator(self) -> None:
        s = self.settings
        self.dataset = load_dataset(s)
        self.eval_parts = build_partitions(
            s.model, dataset_spec(s), s.seed, s.bert_model, s.bert_pretrained)
        self.results.start_metrics()
        self.rounds: list[dict[str, Any]] = []
        self.exchange_seconds: list[float] = []
        self._evaluations: list[asyncio.Future[None]] = []
        self.torrent_disk_history: list[int] = []
        self._counters: dict[int, dict[str, int]] = {}

    async def _report_round(self, round_: int, stats: list[dict[str, Any]]) -> None:
        if self.is_server:
            await self.round_done(self.me, round_, {"owners": stats})
        else:
            await self.peers[self.settings.server_number].round_done(round_, {"owners": stats})

    async def _distribute_initial_model(self) -> None:
        """Send every client the aggregator's weights, so that all start from them."""
        initial = {f"{p}/{k}": v for p, part in enumerate(self.eval_parts, 1)
                   for k, v in part.state_dict().items()}
        data = await asyncio.get_running_loop().run_in_executor(None, save_safetensors, initial)
        await self._push_model("initial", 0, data)

    async def _push_model(self, kind: str, round_: int, data: bytes) -> None:
        everyone = range(1, self.plan.num_clients + 1)
        blob = self.bulk.out(kind, round_, data, sources=everyone)
        await asyncio.gather(*(self._push(k, blob, len(data)) for k in self.peers))
        self._apply_model(kind, round_, data)

    async def _aggregate(self, round_: int) -> None:
        loop = asyncio.get_running_loop()
        exchange_start = time.time()
        blobs = await asyncio.gather(*(
            self.get_states(round_) if k == self.me else self._pull(k, round_)
            for k in range(1, self.plan.num_clients + 1)))
        owners = [o for stats in self._round_done[round_].values() for o in stats["owners"]]
        averaged = await loop.run_in_executor(None, self._average, blobs, owners)
        data = await loop.run_in_executor(None, save_safetensors, averaged)
        await self._push_model("model", round_, data)
        self.exchange_seconds.append(time.time() - exchange_start)
        seconds = time.time() - self.round_started
        self.round_started = time.time()
        # Note: evaluation off the critical path. The clients train round r+1 while the
        # aggregator evaluates round r; evaluations run in round order and end before Finish.
        previous = self._evaluations[-1] if self._evaluations else None
        evaluation = asyncio.ensure_future(
            self._evaluate_round(previous, round_, blobs, owners, averaged, seconds))
        evaluation.add_done_callback(self._check_aggregation)
        self._evaluations.append(evaluation)

    async def _evaluate_round(self, previous: asyncio.Future[None] | None, round_: int,
                              blobs: Sequence[Blob], owners: list[dict[str, Any]],
                              averaged: dict[str, torch.Tensor], seconds: float) -> None:
        if previous is not None:
            await previous
        metrics = await asyncio.get_running_loop().run_in_executor(
            None, self._evaluate, averaged)
        self._record_round(round_, blobs, owners, metrics, averaged, seconds)

    async def _pull(self, k: int, round_: int) -> Blob:
        start = time.time()
        blob = await self.peers[k].get_states(round_)
        data = await self.bulk.into(blob)
        self.received_bytes += len(data)
        self.metrics.transfer(k, self.settings.bulk_transport, "bulk", len(data),
                              time.time() - start, sent=False)
        return Blob(blob.kind, blob.round, blob.sender, data, blob.meta)

    async def _push(self, k: int, model: Blob, size: int) -> None:
        start = time.time()
        await self.peers[k].put_model(model, timeout=self._bulk_timeout)
        self.sent_bytes += len(model.data) or size
        self.metrics.transfer(k, self.settings.bulk_transport, "bulk", size,
                              time.time() - start, sent=True)

    def _average(self, blobs: Sequence[Blob],
                 owners: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        weight = {o["owner"]: float(o["samples"]) for o in owners}
        per_partition: dict[int, dict[int, dict[str, torch.Tensor]]] = defaultdict(
            lambda: defaultdict(dict))
        for blob in blobs:
            for key, value in load_safetensors(blob.data).items():
                owner_key, partition_key, name = key.split("/", 2)
                per_partition[int(partition_key)][int(owner_key)][name] = value
        averaged: dict[str, torch.Tensor] = {}
        for partition, states in sorted(per_partition.items()):
            avg = fedavg([(state, weight[owner]) for owner, state in sorted(states.items())])
            averaged.update({f"{partition}/{k}": v for k, v in avg.items()})
        return averaged

    def _evaluate(self, averaged: dict[str, torch.Tensor]) -> dict[str, float]:
        for p, part in enumerate(self.eval_parts, 1):
            prefix = f"{p}/"
            part.load_state_dict({k[len(prefix):]: v for k, v in averaged.items()
                                  if k.startswith(prefix)})
        return evaluate(compose(self.eval_parts), self.dataset.test_x, self.dataset.test_y)

    def _record_round(self, round_: int, blobs: Sequence[Blob], owners: list[dict[str, Any]],
                      metrics: dict[str, float], averaged: dict[str, torch.Tensor],
                      seconds: float) -> None:
        sent = sum(int(b.meta.get("sent", 0)) for b in blobs)
        received = sum(int(b.meta.get("received", 0)) for b in blobs)
        previous = self._counters.get(round_ - 1, {"sent": 0, "received": 0})
        self._counters[round_] = {"sent": sent, "received": received}
        batches = sum(o["batches"] for o in owners)
        row = {
            "round": round_ + 1,
            "test_accuracy": round(metrics["accuracy"], 6),
            "f1_macro": round(metrics["f1_macro"], 6),
            "test_loss": round(metrics["loss"], 6),
            "train_loss": round(sum(o["loss_sum"] for o in owners) / max(batches, 1), 6),
            "round_seconds": round(seconds, 3),
            "bytes_sent": sent - previous["sent"],
            "bytes_received": received - previous["received"],
            "samples": sum(o["samples"] for o in owners),
        }
        self.results.add_round(row)
        m = self.metrics
        m.test_accuracy.labels(m.client).set(row["test_accuracy"])
        m.test_f1.labels(m.client).set(row["f1_macro"])
        m.round_seconds.labels(m.client).set(row["round_seconds"])
        self.rounds.append(row)
        self.peak_rss = {b.sender: int(b.meta.get("peak_rss_kib", 0)) for b in blobs}
        self.torrent_disk = {str(b.sender): int(b.meta.get("torrent_disk_bytes", 0))
                             for b in blobs}
        self.torrent_disk_history.append(sum(self.torrent_disk.values()))
        self.model_path = self.results.save_model(round_ + 1, averaged)
        log.info("round %d/%d: test accuracy %.4f, macro F1 %.4f, train loss %.4f, %.1fs",
                 round_ + 1, self.settings.num_rounds, row["test_accuracy"], row["f1_macro"],
                 row["train_loss"], row["round_seconds"])

    async def _finish(self, seconds: float) -> dict[str, Any]:
        async def tell(peer: PeerClient) -> None:
            with contextlib.suppress(Exception):
                await peer.finish("training complete")

        await asyncio.gather(*self._evaluations)
        self.finished.set_result(None)
        await asyncio.gather(*(tell(p) for p in self.peers.values()))
        last = self.rounds[-1]
        samples = sum(r["samples"] for r in self.rounds)
        train_seconds = sum(r["round_seconds"] for r in self.rounds)
        summary = {
            "fingerprint": self.plan.fingerprint,
            "model": self.settings.model,
            "dataset": self.settings.dataset,
            "clients": self.plan.num_clients,
            "rounds": len(self.rounds),
            "test_accuracy": last["test_accuracy"],
            "f1_macro": last["f1_macro"],
            "test_loss": last["test_loss"],
            "train_loss": last["train_loss"],
            "total_seconds": round(seconds, 3),
            "train_seconds": round(train_seconds, 3),
            "samples_per_second": round(samples / max(train_seconds, 1e-9), 2),
            "bytes_sent": sum(r["bytes_sent"] for r in self.rounds),
            "model_bytes_on_disk": self.model_path.stat().st_size,
            "bulk_transport": self.settings.bulk_transport,
            "activation_transport": self.settings.activation_transport,
            "exchange_seconds": [round(x, 3) for x in self.exchange_seconds],
            "torrent_disk_bytes": self.torrent_disk,
            "torrent_disk_bytes_by_round": self.torrent_disk_history,
            "peak_rss_mib": {str(k): round(kib / 1024, 1)
                             for k, kib in sorted(self.peak_rss.items())},
        }
        self.results.write_summary(summary)
        return summary
