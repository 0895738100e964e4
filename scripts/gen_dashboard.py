"""Write monitoring/grafana/dashboards/splitnet.json.

Run: .venv/bin/python scripts/gen_dashboard.py
"""

import json
from pathlib import Path

R = "[1m]"
COMPUTE = "splitnet_task_compute_seconds"
BY_STAGE = "sum by (le, partition, direction)"
PANELS = [
    # (row, title, unit, [(expr, legend)])
    ("Cluster", "Throughput (samples/s)", "short",
     [(f"sum(rate(splitnet_samples_total{R}))", "all owners"),
      (f"sum by (owner) (rate(splitnet_samples_total{R}))", "owner {{owner}}")]),
    ("Cluster", "Train loss per owner", "short", [("splitnet_train_loss", "owner {{owner}}")]),
    ("Cluster", "Test accuracy and macro F1 per round", "percentunit",
     [("max(splitnet_test_accuracy)", "accuracy"), ("max(splitnet_test_f1_macro)", "macro F1")]),
    ("Cluster", "Round time and current round", "s",
     [("max(splitnet_round_seconds)", "round seconds"), ("max(splitnet_round)", "round")]),
    ("Clients", "Compute vs transfer time per client (s/s)", "s",
     [(f"sum by (client) (rate({COMPUTE}_sum{R}))", "compute, client {{client}}"),
      (f"sum by (client) (rate(splitnet_transfer_seconds_sum{R}))",
       "transfer, client {{client}}")]),
    ("Clients", "Stage latency p50 / p95", "s",
     [(f"histogram_quantile(0.5, {BY_STAGE} (rate({COMPUTE}_bucket{R})))",
       "p50 {{direction}} p{{partition}}"),
      (f"histogram_quantile(0.95, {BY_STAGE} (rate({COMPUTE}_bucket{R})))",
       "p95 {{direction}} p{{partition}}")]),
    ("Clients", "Queue depth and batches in flight", "short",
     [("splitnet_queue_depth", "queue, client {{client}}"),
      ("splitnet_batches_in_flight", "in flight, client {{client}}")]),
    ("Clients", "Memory and CPU", "bytes",
     [("process_resident_memory_bytes", "RSS {{instance}}"),
      (f"rate(process_cpu_seconds_total{R})", "CPU {{instance}}")]),
    ("Links", "Bytes sent by link and transport (B/s)", "Bps",
     [(f"sum by (client, peer, transport, kind) (rate(splitnet_sent_bytes_total{R}))",
       "{{client}} → {{peer}} {{transport}} {{kind}}")]),
    ("Links", "Bytes received by link (B/s)", "Bps",
     [(f"sum by (client, peer, transport) (rate(splitnet_received_bytes_total{R}))",
       "{{peer}} → {{client}} {{transport}}")]),
    ("BitTorrent", "Swarm: peers, rates, bytes served", "short",
     [("splitnet_torrent_peers", "peers, client {{client}}"),
      ("splitnet_torrent_upload_rate_bytes", "up B/s, client {{client}}"),
      ("splitnet_torrent_download_rate_bytes", "down B/s, client {{client}}"),
      ("splitnet_torrent_served_bytes", "served, client {{client}}")]),
    ("Health", "Errors by kind and peers up", "short",
     [("sum by (client, kind) (splitnet_errors_total)", "{{kind}}, client {{client}}"),
      ("splitnet_peers_up", "peers up, client {{client}}")]),
    ("Health", "Rejoins, last recovery seconds, dropped clients", "short",
     [("sum by (client) (splitnet_rejoins_total)", "rejoins, client {{client}}"),
      ("splitnet_recovery_seconds", "last recovery s, client {{client}}"),
      ("max(splitnet_dropped_clients)", "dropped clients")]),
    ("Privacy", "Privacy spent at the cut (epsilon at DP_DELTA)", "short",
     [("splitnet_dp_epsilon", "epsilon, client {{client}}")]),
]


def dashboard() -> dict:
    """Build the dashboard as Grafana JSON: one row per group, two panels per line."""
    panels, y, row_seen = [], 0, None
    for index, (row, title, unit, exprs) in enumerate(PANELS):
        if row != row_seen:
            panels.append({"type": "row", "title": row, "id": 100 + index, "collapsed": False,
                           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
            y += 1
            row_seen, x = row, 0
        panels.append({
            "type": "timeseries", "title": title, "id": index + 1,
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
            "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "prometheus"}}
                        for i, (expr, legend) in enumerate(exprs)],
        })
        x = 12 - x
        if x == 0:
            y += 8
    return {"title": "splitnet", "uid": "splitnet", "schemaVersion": 37, "version": 1,
            "refresh": "5s", "time": {"from": "now-30m", "to": "now"}, "tags": ["splitnet"],
            "panels": panels}


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "monitoring/grafana/dashboards/splitnet.json"
    target.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {target}")
