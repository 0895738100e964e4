"""The bench's report: the Markdown table of systems, the machine line and what TLS costs."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from splitnet.bench.latency import latency_table

__all__ = ["NO_TLS", "machine", "table", "tls_cost"]

NO_TLS = "splitnet offload, TLS=off"  # the offload run on the token alone: TLS's baseline


def tls_cost(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Return what TLS costs the offload run: samples/s and wire bytes against TLS=off."""
    by_name = {r["system"]: r for r in rows if "samples_per_second" in r}
    tls, plain = by_name.get("splitnet offload"), by_name.get(NO_TLS)
    if tls is None or plain is None:
        return {}
    wire = (tls["wire_bytes"] / plain["wire_bytes"]
            if tls["wire_bytes"] and plain["wire_bytes"] else None)
    return {"samples_per_second": tls["samples_per_second"] / plain["samples_per_second"],
            "wire_bytes": wire, "wire_over_payload": tls["wire_over_payload"]}


def machine() -> str:
    """Return the machine line of the report: CPU, cores, Python and torch."""
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def _fmt(value: Any, spec: str, none: str = "—") -> str:
    return none if value is None else format(value, spec)


def table(report: dict[str, Any]) -> str:
    """Return the comparison as a Markdown table (rows: systems; columns: metrics)."""
    head = ("| system | test acc | test F1 | train acc | train F1 | s/epoch | samples/s | "
            "x centralized | x pipelining | inference µs/sample | acc per train s | "
            "peak RSS MiB (max of n) | model KiB | wire bytes/batch | wire ÷ payload |")
    lines = [head, "|" + "---|" * 15]
    for r in report["rows"]:
        if "samples_per_second" not in r:
            lines.append(f"| {r['system']} | {r.get('note', '')} |" + " |" * 13)
            continue
        lines.append(
            f"| {r['system']} | {r['test_accuracy']:.4f} | {r['test_f1']:.4f} | "
            f"{r['train_accuracy']:.4f} | {r['train_f1']:.4f} | {r['seconds_per_epoch']:.3f} | "
            f"{r['samples_per_second']:.0f} | {r['vs_centralized']:.2f}x | "
            f"{r['vs_pipelining']:.2f}x | {r['inference_us_per_sample']:.1f} | "
            f"{r['efficiency']:.3f} | {r['peak_rss_mib_max']:.0f} (of {r['processes']}) | "
            f"{r['model_bytes'] / 1024:.0f} | {_fmt(r['wire_bytes_per_batch'], '.0f')} | "
            f"{_fmt(r['wire_over_payload'], '.3f')} |")
    s = report["settings"]
    lines += ["", f"{s['model']} on {s['dataset']}, {s['clients']} clients, {s['rounds']} rounds x "
              f"{s['epochs']} epochs, batch {s['batch_size']}, lr {s['learning_rate']}, seed "
              f"{s['seed']}; {report['machine']}. Command: `{report['command']}`."]
    cost = report.get("tls") or {}
    if cost:
        lines.append(f"TLS (mutual TLS on every channel; `splitnet offload` runs with it, "
                     f"`{NO_TLS}` without): samples/s with ÷ without "
                     f"{cost['samples_per_second']:.3f}; wire bytes with ÷ without "
                     f"{_fmt(cost['wire_bytes'], '.3f')}; wire ÷ payload with TLS "
                     f"{_fmt(cost['wire_over_payload'], '.3f')}.")
    tried = report.get("centralized_threads") or []
    if tried:
        chosen = next((r.get("threads") for r in report["rows"]
                       if r["system"] == "centralized PyTorch"), "?")
        lines.append("Centralized PyTorch is the best of " + ", ".join(
            f"{label} {sps:.0f} samples/s" for label, sps in tried) + f" (chosen: {chosen}).")
    if report.get("latency"):
        lines += ["", "Across an emulated WAN (each client's one-way delay RTT/2; `splitnet "
                  "local --wan`):", "", latency_table(report["latency"], report["target"])]
    if not report["wire_measured"]:
        lines.append("Wire bytes not measured: no network namespace could be made (needs root).")
    return "\n".join(lines)
