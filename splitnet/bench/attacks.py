"""``splitnet attack``: how much a helper learns across splitnet's cut, with and without DP.

Both attacks run in one process, on splitnet's own CNN partitions and DIGITS, with the owner
and helper placement of ``splitnet.bench.split_training``: ``label-leak`` scores the labels
from the gradients the helper receives (:mod:`splitnet.bench.label_leak`), ``invert``
rebuilds the owner's inputs from the activations it releases (:mod:`splitnet.bench.inversion`).
Each prints a Markdown table (one row without protection, one per noise multiplier sigma) and
writes ``<out>/<attack>.json`` and ``<out>/<attack>.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from splitnet.bench.attack_options import AttackOptions
from splitnet.bench.inversion import run_inversion
from splitnet.bench.label_leak import run_label_leak
from splitnet.learning.dp import epsilon

__all__ = ["DELTA", "attack_table", "json_safe", "run_attack"]

DELTA = 1e-5

_COLUMNS = {
    "label-leak": [("attack AUC", "auc"), ("norm AUC", "auc_norm"),
                   ("cosine AUC", "auc_cosine"), ("test accuracy", "test_accuracy"),
                   ("test F1", "test_f1")],
    "invert": [("reconstruction MSE", "mse"), ("mean-image MSE", "mse_mean_image"),
               ("test accuracy", "test_accuracy"), ("unclipped accuracy",
                                                    "test_accuracy_unclipped")],
}


def run_attack(opts: AttackOptions, progress: Callable[[str], None] | None = None) -> str:
    """Run ``opts.attack``; write its JSON and Markdown under ``opts.out``; return the table.

    Note: one thread. The model and batches are tiny: torch's intra-op threads cost more than
    they give, and on a shared machine far more (30x measured on 2 busy cores), so the run
    uses one thread and restores the count afterwards.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.time()
    try:
        runner = run_label_leak if opts.attack == "label-leak" else run_inversion
        rows = runner(opts, progress)
    finally:
        torch.set_num_threads(threads)
    for row in rows:
        sigma = row["sigma"]
        row["epsilon"] = None if sigma is None else epsilon(sigma, opts.epochs, DELTA)
    table = attack_table(opts, rows)
    opts.out.mkdir(parents=True, exist_ok=True)
    result = {"attack": opts.attack, "command": opts.command, "seed": opts.seed,
              "quick": opts.quick, "clip": opts.clip, "epochs": opts.epochs, "delta": DELTA,
              "seconds": round(time.time() - start, 2), "rows": json_safe(rows)}
    (opts.out / f"{opts.attack}.json").write_text(json.dumps(result, indent=2,
                                                              allow_nan=False) + "\n")
    (opts.out / f"{opts.attack}.md").write_text(table + "\n")
    return table


def attack_table(opts: AttackOptions, rows: list[dict[str, Any]]) -> str:
    """Return the Markdown table of ``rows``: sigma, ε, then the attack's columns."""
    columns = _COLUMNS[opts.attack]
    lines = [f"{opts.attack}: clip {opts.clip:g}, {opts.epochs} epochs, seed {opts.seed} "
             f"(`{opts.command}`)", "",
             "| protection | sigma | ε (δ=1e-5) | " + " | ".join(c for c, _ in columns) + " |",
             "|" + "---|" * (3 + len(columns))]
    for row in rows:
        sigma = row["sigma"]
        cells = ["none", "-", "∞"] if sigma is None else [
            "clip + noise", f"{sigma:g}", _number(row["epsilon"])]
        cells += [_number(row[key]) for _, key in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None or math.isinf(value):
        return "∞"
    return "diverged" if math.isnan(value) else f"{value:.3f}"


def json_safe(value: Any) -> Any:
    """Return ``value`` with every NaN and infinity in it as null (JSON has neither)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value
