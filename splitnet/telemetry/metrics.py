"""Prometheus metrics of one client, served on ``METRICS_PORT`` (prometheus-client).

Label sets stay bounded: client, owner, partition, direction, peer, transport, kind — never a
batch id or a timestamp. Label combinations a panel needs are created at start with zero
values, so a dashboard shows zeros rather than "no data" before the first event.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from splitnet.telemetry.endpoint import EndpointSecurity, serve_metrics

__all__ = ["ERROR_KINDS", "Metrics"]

ERROR_KINDS = ("rejected", "auth", "limit", "timeout", "transfer")
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric one client exports, in its own registry."""

    def __init__(self, client: int) -> None:
        self.client = str(client)
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        c = ["client"]
        self.task_seconds = Histogram(
            "splitnet_task_compute_seconds", "Compute time of one task",
            [*c, "owner", "partition", "direction"], registry=r, buckets=_SECONDS)
        self.transfer_seconds = Histogram(
            "splitnet_transfer_seconds", "Time to hand one object to a peer",
            [*c, "peer", "transport", "kind"], registry=r, buckets=_SECONDS)
        self.bytes_sent = Counter("splitnet_sent_bytes", "Payload bytes sent",
                                  [*c, "peer", "transport", "kind"], registry=r)
        self.bytes_received = Counter("splitnet_received_bytes", "Payload bytes received",
                                      [*c, "peer", "transport", "kind"], registry=r)
        self.batches = Counter("splitnet_batches", "Batches an owner finished", [*c, "owner"],
                               registry=r)
        self.samples = Counter("splitnet_samples", "Samples an owner trained", [*c, "owner"],
                               registry=r)
        self.in_flight = Gauge("splitnet_batches_in_flight", "Owner batches in the pipeline", c,
                               registry=r)
        self.queue_depth = Gauge("splitnet_queue_depth", "Inputs waiting for a compute slot", c,
                                 registry=r)
        self.train_loss = Gauge("splitnet_train_loss", "Last training loss of an owner",
                                [*c, "owner"], registry=r)
        self.test_accuracy = Gauge("splitnet_test_accuracy", "Test accuracy after a round", c,
                                   registry=r)
        self.test_f1 = Gauge("splitnet_test_f1_macro", "Test macro F1 after a round", c,
                             registry=r)
        self.round_seconds = Gauge("splitnet_round_seconds", "Duration of the last round", c,
                                   registry=r)
        self.round = Gauge("splitnet_round", "Current round (0-based)", c, registry=r)
        self.epoch = Gauge("splitnet_epoch", "Current local epoch of this client's owner", c,
                           registry=r)
        self.peers_up = Gauge("splitnet_peers_up", "Peers that answered the last heartbeat", c,
                              registry=r)
        self.errors = Counter("splitnet_errors", "Errors by kind", [*c, "kind"], registry=r)
        self.rejoins = Counter("splitnet_rejoins", "Restarts of this client's node to rejoin "
                               "after a lost peer (FAILURE_POLICY=wait or drop)", c, registry=r)
        self.dropped_clients = Gauge("splitnet_dropped_clients", "Clients dropped from the run "
                                     "(FAILURE_POLICY=drop)", c, registry=r)
        self.recovery_seconds = Gauge("splitnet_recovery_seconds", "Seconds from the last lost "
                                      "peer to every client joined again", c, registry=r)
        self.torrent_peers = Gauge("splitnet_torrent_peers", "Connected BitTorrent peers", c,
                                   registry=r)
        self.torrent_upload_rate = Gauge("splitnet_torrent_upload_rate_bytes",
                                         "BitTorrent payload upload rate (bytes/s)", c, registry=r)
        self.torrent_download_rate = Gauge("splitnet_torrent_download_rate_bytes",
                                           "BitTorrent payload download rate (bytes/s)", c,
                                           registry=r)
        self.torrent_served = Gauge("splitnet_torrent_served_bytes",
                                    "Payload bytes this client's torrents served to others", c,
                                    registry=r)
        self.dp_epsilon = Gauge("splitnet_dp_epsilon", "Privacy spent so far (epsilon at "
                                "DP_DELTA) by this client's owner at the cut; 0 without DP", c,
                                registry=r)
        for kind in ERROR_KINDS:
            self.errors.labels(self.client, kind)
        self.rejoins.labels(self.client)  # 0 until a rejoin: the series exists from the start
        for gauge in (self.in_flight, self.queue_depth, self.test_accuracy, self.test_f1,
                      self.round_seconds, self.round, self.epoch, self.peers_up,
                      self.torrent_peers, self.torrent_upload_rate, self.torrent_download_rate,
                      self.torrent_served, self.recovery_seconds, self.dropped_clients,
                      self.dp_epsilon):
            gauge.labels(self.client).set(0)

    def serve(self, port: int, host: str = "0.0.0.0",
              security: EndpointSecurity | None = None) -> tuple[Any, Any]:
        """Serve ``/metrics`` on ``host:port`` from a background thread; return server, thread."""
        return serve_metrics(self.registry, port, host, security)

    def error(self, kind: str) -> None:
        """Count one error of ``kind``."""
        self.errors.labels(self.client, kind).inc()

    def transfer(self, peer: int, transport: str, kind: str, nbytes: int, seconds: float,
                 *, sent: bool) -> None:
        """Record one transfer to (``sent``) or from a peer."""
        labels = (self.client, str(peer), transport, kind)
        (self.bytes_sent if sent else self.bytes_received).labels(*labels).inc(nbytes)
        if sent:
            self.transfer_seconds.labels(*labels).observe(seconds)
