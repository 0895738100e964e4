"""``splitnet bench privacy``: what each privacy mode costs and what it buys, in one table.

Each model (a :class:`~splitnet.bench.cases.Case`) trains the same ``splitnet local`` run (owner
k's middle partitions on client k+1, so activations and gradients cross the cut) once per mode:
none, secure aggregation, differential privacy at the cut (activations and gradients) with
sigma = 0.5 and 1.0, and secure aggregation with DP sigma = 1.0. Seconds per epoch and samples/s
(and their ratio to the run without protection, same bench run), test accuracy and ε come from
each run's ``summary.json``; the leakage columns come from the attacks (``splitnet attack``, on
the CNN and DIGITS, so only those rows have them) run with the same sigma.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitnet.bench.cases import Case, write_env
from splitnet.bench.systems import placements
from splitnet.config import catalog
from splitnet.errors import RuntimeFailure

__all__ = ["MODES", "Case", "Mode", "privacy_table", "run_privacy_bench"]


@dataclass(frozen=True)
class Mode:
    """One row: its name, the settings it adds, and the sigma of its noise (0: none)."""

    name: str
    settings: Mapping[str, str]
    sigma: float = 0.0


def _dp(sigma: float) -> dict[str, str]:
    return {"DP_ACTIVATIONS": "on", "DP_GRADIENTS": "on", "DP_NOISE_MULTIPLIER": str(sigma)}


MODES = (Mode("none", {}), Mode("secure aggregation", {"SECURE_AGGREGATION": "on"}),
         Mode("DP sigma=0.5", _dp(0.5), 0.5), Mode("DP sigma=1.0", _dp(1.0), 1.0),
         Mode("secure aggregation + DP sigma=1.0", {"SECURE_AGGREGATION": "on", **_dp(1.0)}, 1.0))


def _env_file(case: Case, folder: Path) -> Path:
    lists = placements(case.clients, catalog.num_partitions(case.model))["offload"]
    return write_env(case, lists, folder / f"{case.model.lower()}.env", ["CHECKPOINT_KEEP=0"])


def _train(env_file: Path, results: Path, mode: Mode) -> dict[str, Any]:
    env = {**os.environ, "RESULTS_DIR": str(results), **mode.settings}
    env.pop("CHECKPOINT_DIR", None)
    done = subprocess.run([sys.executable, "-m", "splitnet", "local", "--env-file",
                           str(env_file)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeFailure(f"bench privacy: the {mode.name!r} run of {env_file.name} failed: "
                             f"{done.stdout[-1500:]}{done.stderr[-1500:]}")
    summary: dict[str, Any] = json.loads((results / "latest" / "summary.json").read_text())
    return summary


ATTACKED = ("CNN", "DIGITS")  # the attacks' own model and data: leakage is measured there only
Attack = Callable[[float], Mapping[str, float]]
"""Returns the leakage measured at noise multiplier sigma: ``label_leak_auc``, ``inversion_mse``."""


def run_privacy_bench(out: Path, cases: Sequence[Case], attack: Attack | None = None,
                      progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train every case in every mode; return one row per (case, mode), ratios included."""
    out.mkdir(parents=True, exist_ok=True)
    leakage: dict[float, Mapping[str, float]] = {}
    rows: list[dict[str, Any]] = []
    for case in cases:
        env_file = _env_file(case, out)
        baseline = 0.0
        for mode in MODES:
            progress(f"bench privacy: {case.model}, {mode.name} ...")
            folder = out / f"{case.model.lower()}-{mode.name.replace(' ', '-')}"
            summary = _train(env_file, folder, mode)
            rate = float(summary["samples_per_second"])
            baseline = baseline or rate
            attacked = attack is not None and (case.model, case.dataset) == ATTACKED
            if attack is not None and attacked and mode.sigma not in leakage:
                progress(f"bench privacy: attacks at sigma={mode.sigma} ...")
                leakage[mode.sigma] = attack(mode.sigma)
            epochs = case.rounds * case.epochs
            rows.append({
                "model": case.model, "dataset": case.dataset, "mode": mode.name,
                "seconds_per_epoch": float(summary["train_seconds"]) / epochs,
                "samples_per_second": rate, "vs_none": rate / baseline,
                "test_accuracy": float(summary["test_accuracy"]),
                "epsilon": summary.get("dp", {}).get("epsilon") if mode.sigma else None,
                "secure_aggregation": bool(summary.get("secure_aggregation")),
                **(dict(leakage.get(mode.sigma, {})) if attacked else {})})
    (out / "privacy.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _cell(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def privacy_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Return the rows as a Markdown table."""
    lines = ["| model | mode | s/epoch | x none | test acc | ε | label-leak AUC | "
             "inversion MSE |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} ({r['dataset']}) | {r['mode']} | "
                     f"{r['seconds_per_epoch']:.3f} | {r['vs_none']:.2f} | "
                     f"{r['test_accuracy']:.4f} | {_cell(r['epsilon'], '.1f')} | "
                     f"{_cell(r.get('label_leak_auc'), '.3f')} | "
                     f"{_cell(r.get('inversion_mse'), '.4f')} |")
    return "\n".join(lines)
