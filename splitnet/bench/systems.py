"""``splitnet bench``: split training against centralized PyTorch and torch pipelining.

One invocation runs, one after another, on the same data, model, seed, batch size and epochs:

1. ``centralized``: ``splitnet baseline`` (one process), the best of :data:`THREADINGS`
   (Note: best centralized: the fastest of 1 and 2 intra-op threads, 1 and 2 inter-op);
2. ``splitnet all-local``: every owner runs its whole model at home (pure protocol overhead);
3. ``splitnet offload``: owner k's middle partitions run on client k+1 (4 network hops a batch);
4. ``torch pipelining``: ``torch.distributed.pipelining`` over gloo, one process per partition,
   GPipe with as many micro-batches of ``BATCH_SIZE`` as there are owners;
5. ``splitnet offload, shaped`` (``--shaped RATE[,DELAY]``): as 3 under ``tc`` on the loopback
   of the run's own network namespace (all clients share that one link);
6. with ``--rtt``: the offload case across an emulated WAN at each RTT, for each pipeline depth
   and micro-batch count, beside torch pipelining and Flower on the same network (Note: latency
   rows, :mod:`splitnet.bench.latency`).

Every system runs in a fresh network namespace when the machine allows one (root): the loopback
counters of that namespace are the bytes on the wire (TCP/IP headers, control traffic and
heartbeats included). Every system's final model is evaluated here by the same code: accuracy
and macro F1 on the train and test sets, and inference time per sample (the whole model in this
process). Ratios are against the centralized run of the same invocation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from splitnet.bench.latency import run_latency, time_to_target
from splitnet.bench.netns import loopback_bytes, netns_available, wrap
from splitnet.bench.options import BenchOptions, command_line, settings_lines
from splitnet.bench.report import NO_TLS, machine, table, tls_cost
from splitnet.config import Settings
from splitnet.config.catalog import num_partitions
from splitnet.errors import RuntimeFailure
from splitnet.learning.data import Dataset, load_dataset, owner_data
from splitnet.learning.evaluation import evaluate
from splitnet.learning.keys import by_partition
from splitnet.learning.models import build_partitions, compose
from splitnet.ops.baseline import train_union
from splitnet.ops.prepare import prepare
from splitnet.plan.generate import generate_lists
from splitnet.plan.plan import Plan
from splitnet.telemetry.runs import run_folder_of

__all__ = ["THREADINGS", "placements", "run_bench"]

THREADINGS = [("1 thread", 1, 1), ("2 threads", 2, 1), ("2 threads, 2 inter-op", 2, 2)]
"""The centralized run's thread settings tried: (label, TORCH_THREADS, TORCH_INTEROP_THREADS)."""


def placements(clients: int, partitions: int) -> dict[str, list[list[str]]]:
    """Return the all-local lists and the offload lists (owner k's middle on client k+1)."""
    offload = {(k, p): k % clients + 1 for k in range(1, clients + 1)
               for p in range(2, partitions)}
    return {"all-local": generate_lists(clients, partitions),
            "offload": generate_lists(clients, partitions, None, offload)}


@dataclass
class _Run:
    name: str
    results: Path
    seconds: float
    wire: int | None
    note: str = ""


def _run(name: str, command: list[str], results: Path, isolate: bool, shaping: str | None,
         log: Path) -> _Run:
    counters = results.parent / f"{results.name}.netdev"
    counters.unlink(missing_ok=True)
    full = wrap(command, counters, shaping) if isolate else command
    start = time.time()
    with log.open("w") as out:
        done = subprocess.run(full, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode == 97:
        return _Run(name, results, 0.0, None, "not run: tc could not shape the loopback "
                    f"({log.name})")
    if done.returncode != 0:
        tail = log.read_text()[-1500:]
        raise RuntimeFailure(f"bench: {name} failed (exit {done.returncode}); log {log}:\n{tail}")
    return _Run(name, results, time.time() - start, loopback_bytes(counters) if isolate else None)


@dataclass(frozen=True)
class _Data:
    """What every system is evaluated on, read once per bench run."""

    settings: Settings
    plan: Plan
    dataset: Dataset
    train_x: torch.Tensor
    train_y: torch.Tensor


def _load_model(data: _Data, path: Path) -> torch.nn.Module:
    t = data.plan.training
    parts = build_partitions(t.model, data.dataset.spec, t.seed, t.bert_model,
                             data.settings.data.bert_pretrained)
    state = load_file(str(path))
    if any("/" in key for key in state):  # splitnet's averaged model, "partition/name" keys
        by_part = by_partition(state)
        for p, part in enumerate(parts, 1):
            part.load_state_dict(by_part[p])
        return compose(parts)
    model = compose(parts)
    model.load_state_dict(state)
    return model


def _assess(data: _Data, model_path: Path) -> dict[str, float]:
    """Evaluate a saved model on the train union and the test set; time inference."""
    dataset = data.dataset
    model = _load_model(data, model_path)
    train = evaluate(model, data.train_x, data.train_y)
    start = time.perf_counter()
    test = evaluate(model, dataset.test_x, dataset.test_y)
    seconds = time.perf_counter() - start
    return {"test_accuracy": test["accuracy"], "test_f1": test["f1_macro"],
            "train_accuracy": train["accuracy"], "train_f1": train["f1_macro"],
            "inference_us_per_sample": seconds / max(len(dataset.test_y), 1) * 1e6,
            "model_bytes": model_path.stat().st_size}


def _row(run: _Run, data: _Data, summary: dict[str, Any], model_path: Path,
         batches: int, payload: int | None) -> dict[str, Any]:
    t = data.plan.training
    train_seconds = float(summary["train_seconds"])
    rss = [float(v) for v in summary.get("peak_rss_mib", {}).values()]
    row: dict[str, Any] = {"system": run.name, **_assess(data, model_path)}
    row.update({
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / (t.num_rounds * t.num_epochs),
        "samples_per_second": float(summary["samples_per_second"]),
        "efficiency": row["test_accuracy"] / max(train_seconds, 1e-9),
        "processes": len(rss), "peak_rss_mib_max": max(rss, default=0.0),
        "wall_seconds": run.seconds, "batches": batches,
        "wire_bytes": run.wire, "payload_bytes": payload,
        "wire_bytes_per_batch": None if run.wire is None else run.wire / max(batches, 1),
        "wire_over_payload": (None if run.wire is None or not payload
                              else run.wire / payload),
        "note": run.note,
    })
    return row


def _splitnet_facts(results: Path) -> tuple[int, dict[str, Any]]:
    """Return the payload every client sent and the summary with every client's peak RSS.

    ``results`` is the run's folder (``RESULTS_DIR/runs/<run id>``).
    """
    summary = json.loads((results / "summary.json").read_text())
    clients = [json.loads(p.read_text()) for p in sorted(results.glob("client-*.json"))]
    payload = sum(int(c["payload_bytes_sent"]) for c in clients)
    summary["peak_rss_mib"] = {str(c["client"]): float(c["peak_rss_mib"]) for c in clients}
    return payload, summary


def run_bench(opts: BenchOptions, progress: Any = print) -> dict[str, Any]:
    """Run every system; write ``bench.json`` and ``bench.md`` under ``opts.out``."""
    opts.out.mkdir(parents=True, exist_ok=True)
    partitions = num_partitions(opts.model)
    lists = placements(opts.clients, partitions)
    envs: dict[str, Path] = {}
    for name, task_lists in lists.items():
        envs[name] = opts.out / f"{name}.env"
        envs[name].write_text("\n".join(settings_lines(opts, task_lists)) + "\n")
    settings, plan = prepare(envs["all-local"], environ={})
    isolate = netns_available()
    python = [sys.executable, "-m", "splitnet"]
    rows: list[dict[str, Any]] = []
    tried: list[tuple[str, float]] = []
    t = plan.training
    dataset = load_dataset(t, settings.data)
    data = _Data(settings, plan, dataset, *train_union(plan, dataset))
    batches_per_epoch = sum(-(-len(owner_data(dataset, plan.shard_of(o), t,
                                              plan.num_shards).train_y) // t.batch_size)
                            for o in plan.owners)
    batches = batches_per_epoch * t.num_rounds * t.num_epochs

    def env_for(results: Path) -> list[str]:
        return ["env", f"RESULTS_DIR={results}"]

    # 1. centralized: the best of its thread settings (Note: best centralized)
    best: dict[str, Any] | None = None
    for label, intra, interop in THREADINGS:
        progress(f"bench: centralized (splitnet baseline), {label} ...")
        results = opts.out / f"centralized-{intra}-{interop}"
        run = _run("centralized PyTorch", [*env_for(results), f"TORCH_THREADS={intra}",
                                            f"TORCH_INTEROP_THREADS={interop}", *python,
                                            "baseline", "--env-file", str(envs["all-local"])],
                   results, isolate, None, opts.out / f"{results.name}.log")
        summary = json.loads((results / "baseline" / "summary.json").read_text())
        model = results / "baseline" / "models" / f"round{t.num_rounds}.safetensors"
        row = _row(run, data, summary, model, batches, 0)
        row["threads"] = summary.get("threads", label)
        row["time_to_target"] = time_to_target(results / "baseline" / "metrics.csv",
                                               opts.target)
        tried.append((label, row["samples_per_second"]))
        if best is None or row["samples_per_second"] > best["samples_per_second"]:
            best = row
    assert best is not None
    best["system"] = "centralized PyTorch"
    rows.append(best)

    # 2., 3., 5. splitnet
    # (TLS=off: the same offload run on the token alone, the baseline of the TLS ratio)
    systems: list[tuple[str, str, str | None]] = [
        ("splitnet all-local", "all-local", None), ("splitnet offload", "offload", None),
        (NO_TLS, "offload", None)]
    if opts.shaped:
        systems.append((f"splitnet offload, shaped {opts.shaped}", "offload", opts.shaped))
    for name, placement, shaping in systems:
        progress(f"bench: {name} ...")
        results = opts.out / name.replace(" ", "-").replace(",", "").replace("=", "-")
        tls = ["--tls", "off"] if name == NO_TLS else []
        run = _run(name, [*env_for(results), *python, "local", *tls, "--env-file",
                          str(envs[placement])], results, isolate, shaping,
                   opts.out / f"{results.name}.log")
        if run.note:
            rows.append({"system": name, "note": run.note})
            continue
        folder = run_folder_of(results)  # the run `splitnet local` made (a fresh RESULTS_DIR)
        payload, summary = _splitnet_facts(folder)
        model = folder / "models" / f"round{t.num_rounds}.safetensors"
        rows.append(_row(run, data, summary, model, batches, payload))

    # 4. torch.distributed.pipelining
    progress("bench: torch.distributed.pipelining (gloo) ...")
    results = opts.out / "torch-pipelining"
    run = _run("torch pipelining (gloo, GPipe)",
               [sys.executable, "-m", "splitnet.bench.pipelining", str(envs["all-local"]),
                str(results), str(len(plan.owners))], results, isolate, None,
               opts.out / "torch-pipelining.log")
    summary = json.loads((results / "summary.json").read_text())
    rows.append(_row(run, data, summary, results / "models" / "model.safetensors",
                     int(summary["batches"]), int(summary["payload_bytes_sent"])))

    central = rows[0]["samples_per_second"]
    pipelining = rows[-1]["samples_per_second"]
    for row in rows:
        if "samples_per_second" in row:
            row["vs_centralized"] = row["samples_per_second"] / central
            row["vs_pipelining"] = row["samples_per_second"] / pipelining
    latency: list[dict[str, Any]] = []
    if opts.rtt:  # Note: latency rows
        latency = run_latency(opts, envs, plan, central, progress)
        for row in latency:
            if row.get("model"):
                row["test_accuracy"] = _assess(data, Path(row.pop("model")))["test_accuracy"]
    report = {
        "command": command_line(opts), "tls": tls_cost(rows), "centralized_threads": tried,
        "latency": latency, "target": opts.target,
        "machine": machine(), "settings": {
            "model": opts.model, "dataset": opts.dataset, "clients": opts.clients,
            "rounds": opts.rounds, "epochs": opts.epochs, "batch_size": opts.batch_size,
            "learning_rate": opts.learning_rate, "seed": opts.seed,
            "bulk_transport": opts.bulk_transport, "placements": lists},
        "wire_measured": isolate, "rows": rows}
    (opts.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (opts.out / "bench.md").write_text(table(report) + "\n")
    return report
