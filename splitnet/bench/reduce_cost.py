"""``splitnet bench reduce``: AGGREGATION=central vs reduce, busiest client's bytes and round time.

The same small ``splitnet local`` run twice: ``OWNERS`` data owners, each with every partition
at home, and one more client that only aggregates (so central's aggregator moves the N·S it
would with N owners), once with ``AGGREGATION=central`` and once with ``reduce``. Optionally
every client's egress is capped (``--rate``: ``splitnet local --wan rate=...``, root). Printed
per setting: the busiest client's round-end bytes in the last round (the more of what it sent
and received: ``busiest_client_bulk_bytes`` in ``summary.json``) as a multiple of the model size
S, and the mean round and exchange seconds after round 1 (round 1 also hands out the initial
model); then reduce's figures over central's, from the same invocation.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from splitnet.bench.cases import Case, write_env
from splitnet.config import catalog
from splitnet.errors import RuntimeFailure

__all__ = ["run_reduce_bench"]


def _env_file(case: Case, owners: int, folder: Path, bulk: str) -> Path:
    p = catalog.num_partitions(case.model)
    lists = [[f"{o}_{s}" for s in range(1, 2 * p + 1)] for o in range(1, owners + 1)] + [[]]
    return write_env(case, lists, folder / "reduce-bench.env",
                     extra=[f"SERVER_NUMBER={owners + 1}", f"BULK_TRANSPORT={bulk}",
                            "CHECKPOINT_KEEP=0"])


def _run(env_file: Path, results: Path, aggregation: str, rate: str | None) -> dict[str, Any]:
    env = {**os.environ, "RESULTS_DIR": str(results), "AGGREGATION": aggregation}
    command = [sys.executable, "-m", "splitnet", "local", "--env-file", str(env_file),
               "--tls", "off"]
    if rate:
        command += ["--wan", f"rate={rate}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeFailure(f"bench reduce: the AGGREGATION={aggregation} run failed: "
                             f"{done.stdout[-1500:]}{done.stderr[-1500:]}")
    latest = results / "latest"
    summary: dict[str, Any] = json.loads((latest / "summary.json").read_text())
    model = sorted((latest / "models").glob("round*.safetensors"))[-1]
    summary["model_bytes"] = len(save_safetensors(load_file(str(model))))
    return summary


def _figures(summary: dict[str, Any]) -> dict[str, float]:
    rounds = summary["rounds"]
    rows = summary["busiest_client_bulk_bytes"]
    size = summary["model_bytes"]
    exchange = summary["exchange_seconds"][1:] or summary["exchange_seconds"]
    return {"busiest_mib": rows[str(rounds)] / 2**20, "busiest_x_s": rows[str(rounds)] / size,
            "round_s": summary["train_seconds"] / max(rounds, 1),
            "exchange_s": statistics.mean(exchange), "accuracy": summary["test_accuracy"]}


def run_reduce_bench(out: Path, owners: int = 8, model: str = "CNN", dataset: str = "DIGITS",
                     rounds: int = 3, rate: str | None = None, bulk: str = "grpc",
                     progress: Callable[[str], None] = print) -> str:
    """Run central then reduce; return a markdown table with reduce ÷ central."""
    out.mkdir(parents=True, exist_ok=True)
    case = Case(model, dataset, clients=owners + 1, rounds=rounds)
    env_file = _env_file(case, owners, out, bulk)
    figures = {}
    for aggregation in ("central", "reduce"):
        progress(f"bench reduce: {model}, {owners} owners + an aggregator, "
                 f"AGGREGATION={aggregation}, egress {rate or 'uncapped'}")
        figures[aggregation] = _figures(_run(env_file, out / aggregation, aggregation, rate))
    c, r = figures["central"], figures["reduce"]
    lines = [f"{model} on {dataset}, {owners} owners + 1 aggregator, BULK_TRANSPORT={bulk}, "
             f"egress {rate or 'uncapped (loopback)'}, {rounds} rounds",
             "", "| AGGREGATION | busiest client, last round (MiB) | in model sizes S | "
             "round (s) | exchange (s) | accuracy |", "|---|---|---|---|---|---|"]
    for name, f in figures.items():
        lines.append(f"| {name} | {f['busiest_mib']:.2f} | {f['busiest_x_s']:.2f} | "
                     f"{f['round_s']:.2f} | {f['exchange_s']:.2f} | {f['accuracy']:.4f} |")
    lines.append(f"| reduce ÷ central | {r['busiest_mib'] / c['busiest_mib']:.2f} | | "
                 f"{r['round_s'] / c['round_s']:.2f} | {r['exchange_s'] / c['exchange_s']:.2f} "
                 "| |")
    return "\n".join(lines)
