"""``splitnet bench --rtt``: the offload case across an emulated WAN, batches in flight.

For every round-trip time asked (``--rtt 0,5,20,50``, milliseconds; each client's one-way delay
is half of it, so any two clients are one RTT apart) the offload case runs once for each
``PIPELINE_DEPTH`` in ``--depths`` and each ``MICRO_BATCHES`` in ``--micro``, with ``--rate``
on every client's egress when given. Beside them, at the same RTT: torch pipelining with the
same emulated network, and the Flower row (:mod:`splitnet.bench.flower`; at RTT 0 and at the
RTT closest to 20 ms only: Note: Flower's rounds). RTT 0 without a rate
is plain loopback (no emulation at all); any other row runs through :class:`~splitnet.ops.wan.Wan`.

Each row reports samples/s, x centralized (the best centralized run of the invocation), x the
``k=1, m=1`` row at the same RTT, test accuracy, and the training seconds until the test
accuracy first reached ``--target`` (rounds are evaluated as they end: ``metrics.csv``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from splitnet.bench.flower import run_flower
from splitnet.bench.options import BenchOptions
from splitnet.bench.pipelining import launch
from splitnet.errors import RuntimeFailure
from splitnet.ops.wan import Wan, rtt_links, wan_unavailable
from splitnet.plan.plan import Plan
from splitnet.telemetry.runs import run_folder_of

__all__ = ["latency_table", "run_latency", "time_to_target"]

Progress = Callable[[str], None]


def time_to_target(metrics_csv: Path, target: float) -> float | None:
    """Return the summed round seconds until test accuracy first reached ``target`` (or None)."""
    if not metrics_csv.exists():
        return None
    seconds = 0.0
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            seconds += float(row["round_seconds"])
            if float(row["test_accuracy"]) >= target:
                return seconds
    return None


def _wan_specs(opts: BenchOptions, rtt: float) -> list[str]:
    parts = [f"delay={rtt / 2:g}ms"] if rtt else []
    if opts.rate:
        parts.append(f"rate={opts.rate}")
    return [",".join(parts)] if parts else []


def _splitnet_row(opts: BenchOptions, env_file: Path, rtt: float, depth: int, micro: int,
                  progress: Progress) -> dict[str, Any]:
    name = f"rtt{rtt:g}-k{depth}-m{micro}"
    results = opts.out / "latency" / name
    specs = _wan_specs(opts, rtt)
    progress(f"bench: splitnet offload, RTT {rtt:g} ms, k={depth}, m={micro} ...")
    command = [sys.executable, "-m", "splitnet", "local", "--env-file", str(env_file),
               *(arg for spec in specs for arg in ("--wan", spec))]
    log = opts.out / "latency" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {"RESULTS_DIR": str(results), "PIPELINE_DEPTH": str(depth),
           "MICRO_BATCHES": str(micro)}
    with log.open("w") as out:
        done = subprocess.run(["env", *(f"{k}={v}" for k, v in env.items()), *command],
                              stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeFailure(f"bench: {name} failed (exit {done.returncode}); log {log}:\n"
                             f"{log.read_text()[-1500:]}")
    folder = run_folder_of(results)
    summary = json.loads((folder / "summary.json").read_text())
    return {"system": "splitnet offload", "rtt_ms": rtt, "depth": depth, "micro": micro,
            "samples_per_second": float(summary["samples_per_second"]),
            "test_accuracy": float(summary["test_accuracy"]),
            "train_seconds": float(summary["train_seconds"]),
            "time_to_target": time_to_target(folder / "metrics.csv", opts.target)}


def _network(opts: BenchOptions, rtt: float,
             endpoints: range) -> contextlib.AbstractContextManager[Wan | None]:
    """Return the emulated WAN the row runs in (None: plain loopback at RTT 0 without a rate)."""
    if not _wan_specs(opts, rtt):
        return contextlib.nullcontext()
    return Wan(rtt_links(rtt, endpoints.stop - 1, opts.rate), endpoints)


def _pipelining_row(opts: BenchOptions, env_file: Path, rtt: float, owners: int,
                    partitions: int, progress: Progress) -> dict[str, Any]:
    progress(f"bench: torch pipelining, RTT {rtt:g} ms ...")
    results = opts.out / "latency" / f"rtt{rtt:g}-pipelining"
    with _network(opts, rtt, range(1, partitions + 1)) as wan:  # rank r in endpoint r+1
        launch(env_file, results, owners, wan)
    summary = json.loads((results / "summary.json").read_text())
    return {"system": "torch pipelining (gloo, GPipe)", "rtt_ms": rtt, "depth": None,
            "micro": owners, "samples_per_second": float(summary["samples_per_second"]),
            "test_accuracy": None, "train_seconds": float(summary["train_seconds"]),
            "time_to_target": None, "model": str(results / "models" / "model.safetensors")}


def _flower_row(opts: BenchOptions, rtt: float, progress: Progress) -> dict[str, Any]:
    progress(f"bench: Flower FedAvg, RTT {rtt:g} ms ...")
    folder = opts.out / "latency" / f"rtt{rtt:g}-flower"
    with _network(opts, rtt, range(opts.clients + 1)) as wan:  # the SuperLink in endpoint 0
        got = run_flower(opts, folder, wan)
    return {"system": "Flower FedAvg (all-local)", "rtt_ms": rtt, "depth": None, "micro": None,
            "samples_per_second": got.get("samples_per_s"),
            "test_accuracy": got.get("test_acc"), "train_seconds": got.get("seconds"),
            "time_to_target": None, "note": got.get("note", "")}


def run_latency(opts: BenchOptions, envs: dict[str, Path], plan: Plan, central: float,
                progress: Progress) -> list[dict[str, Any]]:
    """Run every latency row; return them with their ratios filled in."""
    why = wan_unavailable() if any(opts.rtt) or opts.rate else None
    rows: list[dict[str, Any]] = []
    for rtt in opts.rtt:
        if why and (rtt or opts.rate):
            rows.append({"system": "splitnet offload", "rtt_ms": rtt,
                         "note": f"not run: {why}"})
            continue
        for micro in opts.micro:
            for depth in opts.depths:
                rows.append(_splitnet_row(opts, envs["offload"], rtt, depth, micro, progress))
        rows.append(_pipelining_row(opts, envs["all-local"], rtt, len(plan.owners),
                                    plan.num_partitions, progress))
        if rtt in _flower_rtts(opts.rtt):
            rows.append(_flower_row(opts, rtt, progress))
    for row in rows:
        sps = row.get("samples_per_second")
        if sps is None:
            continue
        row["vs_centralized"] = sps / central
        base = next((r for r in rows if r["system"] == "splitnet offload"
                     and r.get("rtt_ms") == row["rtt_ms"] and r.get("depth") == 1
                     and r.get("micro") == 1 and "samples_per_second" in r), None)
        row["vs_k1"] = None if base is None else sps / base["samples_per_second"]
    return rows


def _flower_rtts(rtts: tuple[float, ...]) -> set[float]:
    """Return where the Flower row runs: RTT 0 and the WAN RTT closest to 20 ms.

    Note: Flower's rounds. Flower 1.42 starts a fresh client process for every message
    (~20 s a round here), so its row runs twice, not at every RTT.
    """
    wan = [r for r in rtts if r]
    return {r for r in rtts if not r} | ({min(wan, key=lambda r: abs(r - 20))} if wan else set())


def _cell(value: Any, form: str) -> str:
    if value is None:
        return "—"
    return format(value, form[:-1]) + "x" if form.endswith("x") else format(value, form)


def latency_table(rows: list[dict[str, Any]], target: float) -> str:
    """Return the markdown table of the latency rows."""
    lines = [f"| system | RTT ms | k | m | test acc | samples/s | x centralized | x k=1 | "
             f"s to {target:g} acc | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['rtt_ms']:g} | {_cell(r.get('depth'), 'd')} | "
            f"{_cell(r.get('micro'), 'd')} | {_cell(r.get('test_accuracy'), '.4f')} | "
            f"{_cell(r.get('samples_per_second'), '.0f')} | "
            f"{_cell(r.get('vs_centralized'), '.2fx')} | {_cell(r.get('vs_k1'), '.2fx')} | "
            f"{_cell(r.get('time_to_target'), '.1f')} | {r.get('note', '')} |")
    return "\n".join(lines)
