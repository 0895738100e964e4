"""``splitnet bench placement``: predicted vs measured round time, and what --auto buys.

One bench, one machine: the partitions are profiled here, ``plan --auto`` searches with the
declared speeds (``CLIENT_SPEED`` = 1 / the slowdown), and three placements train with real
``splitnet local`` runs: all-local, the seed example (``example_configurations/
cnn_cross_offload.env``'s lists) and the --auto choice. Slow clients are made slow with the
test-only ``SPLITNET_TEST_SLOWDOWN`` (:mod:`splitnet.learning.slowdown`: real extra compute).
The local clients share this host's cores, so the prediction is told how many
(``Overheads.cores``). The measured round time is the median of the runs' ``round_seconds``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from splitnet.config import load
from splitnet.learning.profile import profile_partitions
from splitnet.learning.slowdown import ENV_KEY
from splitnet.ops.autoplan import Overheads, auto_plan
from splitnet.ops.local import run_local
from splitnet.ops.prepare import prepare
from splitnet.plan.search import evaluate

__all__ = ["SEED_EXAMPLE", "PlacementRow", "placement_table", "run_placement_bench"]

SEED_EXAMPLE = [["1_1", "1_2", "4_3", "1_4", "1_5", "4_6", "1_7", "1_8"],
                ["2_1", "2_2", "1_3", "2_4", "2_5", "1_6", "2_7", "2_8"],
                ["3_1", "5_2", "5_3", "3_4", "3_5", "5_6", "5_7", "3_8"],
                ["4_1", "4_2", "3_3", "4_4", "4_5", "3_6", "4_7", "4_8"],
                ["5_1", "3_2", "2_3", "5_4", "5_5", "2_6", "3_7", "5_8"]]
"""``example_configurations/cnn_cross_offload.env``'s lists (the seed example placement)."""


@dataclass(frozen=True)
class PlacementRow:
    """One placement: its name, lists, predicted and measured round seconds."""

    name: str
    lists: list[list[str]]
    predicted: float
    measured: float

    @property
    def error(self) -> float:
        """Return (predicted - measured) / measured."""
        return (self.predicted - self.measured) / self.measured


def _env_text(lists: list[list[str]], slowdown: list[float], rounds: int, epochs: int,
              model: str, batch_size: int) -> str:
    speeds = ",".join(f"{1 / k:.6g}" for k in slowdown)
    return "\n".join([
        f"NUM_CLIENTS={len(lists)}", f"CURRENT_MODEL={model}", "CURRENT_DATASET=DIGITS",
        f"BATCH_SIZE={batch_size}", f"TRAINING_NUM_ROUNDS={rounds}",
        f"TRAINING_NUM_EPOCHS={epochs}", "LEARNING_RATE=0.05", "SEED=42", "SERVER_NUMBER=1",
        "NO_TC=true", "TORCH_THREADS=1", "METRICS_PORT=0", "BULK_TRANSPORT=grpc",
        f"CLIENT_SPEED=[{speeds}]",
        "SIMULATION_STAGES_CLIENTS=" + json.dumps(lists, separators=(",", ":")), ""])


def _measured(folder: Path) -> float:
    with (folder / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return statistics.median(float(r["round_seconds"]) for r in rows)


def run_placement_bench(out: Path, slowdown: list[float], rounds: int = 3, epochs: int = 4,
                        model: str = "CNN", batch_size: int = 32, budget: float = 10.0,
                        overheads: Overheads | None = None,
                        progress: Callable[[str], None] = print) -> list[PlacementRow]:
    """Profile, search, run the three placements; return predicted vs measured rows."""
    out.mkdir(parents=True, exist_ok=True)
    local_lists = [[f"{o}_{s}" for s in range(1, 9)] for o in range(1, 6)]
    base = out / "all_local.env"
    base.write_text(_env_text(local_lists, slowdown, rounds, epochs, model, batch_size))
    settings = load(base, environ={}, env_file_required=True)
    profile = profile_partitions(settings.training)
    overheads = overheads or Overheads(cores=os.cpu_count())
    _, plan = prepare(base, env_file_required=True)
    auto = auto_plan(settings, plan, profile, overheads, budget_seconds=budget)
    progress(f"profile: {sum(profile.forward) + sum(profile.backward):.4f} s a batch; "
             f"auto moved {dict(auto.search.best.offload)}")
    cases = [("all-local", local_lists), ("seed example", SEED_EXAMPLE),
             ("--auto", [list(x) for x in auto.search.best.lists])]
    rows = []
    for name, lists in cases:
        env = out / f"{name.strip('-').replace(' ', '_')}.env"
        env.write_text(_env_text(lists, slowdown, rounds, epochs, model, batch_size))
        _, case_plan = prepare(env, env_file_required=True)
        offload = {(o, q): r for (o, q), r in case_plan.runners.items() if r != o}
        predicted = evaluate(5, case_plan.num_partitions, case_plan.owners, offload,
                             auto.costs, auto.batches, 1).seconds
        log = io.StringIO()
        summary, folder = run_local(case_plan, env, out / "results",
                                    extra_env={ENV_KEY: ",".join(f"{k:g}" for k in slowdown)},
                                    out=log)
        (out / f"{env.stem}.log").write_text(log.getvalue())
        rows.append(PlacementRow(name, lists, predicted, _measured(folder)))
        progress(f"{name}: predicted {predicted:.3f} s, measured {rows[-1].measured:.3f} s "
                 f"a round (accuracy {summary.get('test_accuracy')})")
    (out / "placement.json").write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    return rows


def placement_table(rows: list[PlacementRow], slowdown: list[float]) -> str:
    """Return the markdown table: predicted, measured, error, speedup of --auto over each."""
    auto = rows[-1].measured
    lines = [f"slowdown by client: {slowdown}",
             "| placement | predicted s/round | measured s/round | error | --auto speedup |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.predicted:.3f} | {r.measured:.3f} | {r.error:+.0%} | "
                     f"{r.measured / auto:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(placement_table(run_placement_bench(Path(sys.argv[1]), [1, 1, 4, 4, 1]), [1, 1, 4, 4, 1]))
