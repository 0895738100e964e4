"""``splitnet bench checkpoints``: samples/s with round checkpoints and without, same machine.

Each model trains the same small ``splitnet local`` run (every partition at home, clients on
loopback) with ``CHECKPOINT_KEEP=2`` and with ``CHECKPOINT_KEEP=0``, alternately (with, without,
without, with, ...) to damp a shared machine's drift; the samples/s of each setting is the mean
of its runs, and the ratio with ÷ without is the cost of checkpointing (1.0: none).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from splitnet.bench.cases import Case, write_env
from splitnet.config import catalog
from splitnet.errors import RuntimeFailure
from splitnet.plan.generate import generate_lists

__all__ = ["CASES", "QUICK_CASES", "Case", "run_checkpoint_bench"]


CASES = (Case("CNN", "DIGITS", rounds=6, epochs=2), Case("RESNET18", "SYNTHETIC", rounds=4))
QUICK_CASES = (Case("CNN", "DIGITS", rounds=3),)


def _env_file(case: Case, folder: Path) -> Path:
    lists = generate_lists(case.clients, catalog.num_partitions(case.model))
    return write_env(case, lists, folder / f"{case.model.lower()}.env")


def _samples_per_second(env_file: Path, results: Path, keep: int) -> float:
    env = {**os.environ, "RESULTS_DIR": str(results), "CHECKPOINT_KEEP": str(keep)}
    env.pop("CHECKPOINT_DIR", None)  # each run keeps its checkpoints in its own folder
    done = subprocess.run([sys.executable, "-m", "splitnet", "local", "--env-file",
                           str(env_file)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeFailure(f"bench checkpoints: the run of {env_file.name} with "
                             f"CHECKPOINT_KEEP={keep} failed: {done.stdout[-1500:]}"
                             f"{done.stderr[-1500:]}")
    summary = json.loads((results / "latest" / "summary.json").read_text())
    checkpoints = list((results / "latest" / "checkpoints").glob("*.json"))
    if (keep > 0) != bool(checkpoints):
        raise RuntimeFailure(f"bench checkpoints: CHECKPOINT_KEEP={keep} left "
                             f"{len(checkpoints)} checkpoint(s) in {results}")
    return float(summary["samples_per_second"])


def run_checkpoint_bench(out: Path, cases: Sequence[Case] = CASES, pairs: int = 2,
                         progress: Callable[[str], None] = print) -> str:
    """Run every case ``2 * pairs`` times; return a markdown table with the ratios."""
    out.mkdir(parents=True, exist_ok=True)
    rows = ["| model | dataset | runs each | with checkpoints (samples/s) | without | "
            "with ÷ without |", "|---|---|---|---|---|---|"]
    for case in cases:
        env_file = _env_file(case, out)
        rates: dict[int, list[float]] = {2: [], 0: []}
        order = [2, 0, 0, 2] * pairs
        for run, keep in enumerate(order[:2 * pairs]):
            progress(f"bench checkpoints: {case.model} run {run + 1}/{2 * pairs}, "
                     f"CHECKPOINT_KEEP={keep}")
            folder = out / f"{case.model.lower()}-{run}-keep{keep}"
            rates[keep].append(_samples_per_second(env_file, folder, keep))
        with_, without = statistics.mean(rates[2]), statistics.mean(rates[0])
        rows.append(f"| {case.model} | {case.dataset} | {pairs} | {with_:.1f} | "
                    f"{without:.1f} | {with_ / without:.3f} |")
    return "\n".join(rows)
