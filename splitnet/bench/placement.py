"""``splitnet bench placement``: predicted vs measured round time, and what --auto buys.

One bench, one machine. The partitions are profiled here; five clients train with real
``splitnet local`` runs of one of :data:`MODELS` (``--model``: the CNN on DIGITS, or BERT tiny on
SYNTHETIC text, whose endpoints are light and whose two encoder layers are ~95 % of a batch);
the slow ones are made slow with the test-only ``SPLITNET_TEST_SLOWDOWN``
(:mod:`splitnet.learning.slowdown`: a step sleeps (k-1) x its CPU time) and declared with
``CLIENT_SPEED`` = 1 / slowdown. Order:

1. calibration, every client at full speed: all-local and the seed example
   (``example_configurations/cnn_cross_offload.env``'s lists) run, and the prediction's
   constants are read from what their processes recorded (:func:`measure`, Note: measured, not
   fitted, in :mod:`splitnet.bench.placement_fit`): a step's own CPU, the compute scale from
   all-local's step CPU, each client's CPU beside its steps, and the CPU a message costs; both
   calibration rounds are then predicted as a check;
2. with the slowdown: ``plan --auto`` searches with the calibrated costs, then all-local, the
   seed example and the --auto choice run; none of these three was used to calibrate.

The local clients share this host's cores, so the prediction is told how many
(``Overheads.cores``). The measured round time is the median of a run's ``round_seconds``, the
first (warm-up) round left out (Note: fastest round).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from splitnet.bench.placement_fit import Offload, measure, step_cpu
from splitnet.config import load
from splitnet.learning.profile import profile_partitions
from splitnet.learning.slowdown import ENV_KEY
from splitnet.ops.autoplan import Overheads, auto_plan
from splitnet.ops.local import run_local
from splitnet.ops.prepare import prepare
from splitnet.plan.search import evaluate

__all__ = ["MODELS", "SEED_EXAMPLE", "PlacementRow", "all_local", "placement_table",
           "run_placement_bench"]

SEED_EXAMPLE = [["1_1", "1_2", "4_3", "1_4", "1_5", "4_6", "1_7", "1_8"],
                ["2_1", "2_2", "1_3", "2_4", "2_5", "1_6", "2_7", "2_8"],
                ["3_1", "5_2", "5_3", "3_4", "3_5", "5_6", "5_7", "3_8"],
                ["4_1", "4_2", "3_3", "4_4", "4_5", "3_6", "4_7", "4_8"],
                ["5_1", "3_2", "2_3", "5_4", "5_5", "2_6", "3_7", "5_8"]]
"""``example_configurations/cnn_cross_offload.env``'s lists (the seed example placement, P = 4)."""


@dataclass(frozen=True)
class BenchModel:
    """A model the bench trains: its settings, and the batch size and epochs it defaults to."""

    model: str
    dataset: str
    batch_size: int
    epochs: int


MODELS = {"cnn": BenchModel("CNN", "DIGITS", 128, 4),
          "bert": BenchModel("BERT", "SYNTHETIC", 32, 4)}
"""``--model``: both have P = 4, so the seed example's lists apply to either.

Note: heavy middle. The CNN's partition 1 is half a batch's compute and stays on its owner, so a
slowed CNN owner keeps half its work wherever its middle runs; BERT tiny's embeddings and
pooler+classifier are ~5 % of a batch (``splitnet profile``), the case offloading is for: a weak
machine keeps its data and its endpoints, and a strong one runs the encoder layers.
"""


def all_local(n: int, p: int) -> list[list[str]]:
    """Return the lists where every one of ``n`` owners runs its own ``2 p`` stages."""
    return [[f"{o}_{s}" for s in range(1, 2 * p + 1)] for o in range(1, n + 1)]


ALL_LOCAL = all_local(5, 4)


@dataclass(frozen=True)
class PlacementRow:
    """One placement: its name, lists, predicted and measured round seconds, and its role."""

    name: str
    lists: list[list[str]]
    predicted: float
    measured: float
    role: str  # "fit" (calibrated on it) or "held out"

    @property
    def error(self) -> float:
        """Return (predicted - measured) / measured."""
        return (self.predicted - self.measured) / self.measured


def _env_text(lists: list[list[str]], slowdown: list[float], rounds: int, epochs: int,
              batch_size: int, depth: int = 1, model: BenchModel = MODELS["cnn"]) -> str:
    speeds = ",".join(f"{1 / k:.6g}" for k in slowdown)
    return "\n".join([
        f"NUM_CLIENTS={len(lists)}", f"CURRENT_MODEL={model.model}",
        f"CURRENT_DATASET={model.dataset}",
        f"BATCH_SIZE={batch_size}", f"TRAINING_NUM_ROUNDS={rounds}",
        f"TRAINING_NUM_EPOCHS={epochs}", f"PIPELINE_DEPTH={depth}", "LEARNING_RATE=0.05",
        "SEED=42", "SERVER_NUMBER=1",
        "NO_TC=true", "TORCH_THREADS=1", "METRICS_PORT=0", "BULK_TRANSPORT=grpc",
        f"CLIENT_SPEED=[{speeds}]",
        "SIMULATION_STAGES_CLIENTS=" + json.dumps(lists, separators=(",", ":")), ""])


def _measured(folder: Path) -> float:
    """Return a run's fastest round, the first (warm-up) round left out.

    Note: fastest round. Other work on a shared host only ever adds time to a round; the
    fastest of a run's rounds is the one least disturbed.
    """
    with (folder / "metrics.csv").open() as handle:
        seconds = [float(r["round_seconds"]) for r in csv.DictReader(handle)]
    return min(seconds[1:] if len(seconds) > 1 else seconds)


def _offload(lists: list[list[str]], p: int = 4) -> Offload:
    """Return (owner, partition) → runner of the forward tasks run away from their owner."""
    moved: Offload = {}
    for client, tasks in enumerate(lists, 1):
        for text in tasks:
            owner, stage = map(int, text.split("_"))
            if stage <= p and client != owner:
                moved[(owner, stage)] = client
    return moved


def _run(out: Path, name: str, lists: list[list[str]], slowdown: list[float],
         shape: tuple[int, int, int, int], model: BenchModel) -> tuple[float, Path]:
    """Train ``lists`` with ``splitnet local``; return the round seconds and the run's folder."""
    env = out / f"{name}.env"
    env.write_text(_env_text(lists, slowdown, *shape, model=model))
    _, plan = prepare(env, env_file_required=True)
    log = io.StringIO()
    try:
        _, folder = run_local(plan, env, out / "results",
                              extra_env={ENV_KEY: ",".join(f"{k:g}" for k in slowdown)}, out=log)
    finally:
        (out / f"{name}.log").write_text(log.getvalue())
    return _measured(folder), folder


def _interleaved(out: Path, cases: list[tuple[str, list[list[str]]]], slowdown: list[float],
                 shape: tuple[int, int, int, int], model: BenchModel, repeat: int,
                 progress: Callable[[str], None]) -> list[tuple[float, list[Path]]]:
    """Run every case ``repeat`` times, interleaved (ABCABC).

    Returns each case's fastest round and its runs' folders.
    """
    best: list[tuple[float, list[Path]]] = [(float("inf"), []) for _ in cases]
    for attempt in range(repeat):
        for index, (name, lists) in enumerate(cases):
            seconds, folder = _run(out, f"{name}_{attempt + 1}", lists, slowdown, shape, model)
            best[index] = (min(best[index][0], seconds), [*best[index][1], folder])
            cpu = step_cpu(folder)
            progress(f"{name} (run {attempt + 1}): {seconds:.3f} s a round, steps' CPU "
                     f"{cpu[0]:.3f} s in {cpu[1]:.0f} steps")
    return best


def run_placement_bench(out: Path, slowdown: list[float], rounds: int = 3,
                        epochs: int | None = None, batch_size: int | None = None,
                        budget: float = 10.0, repeat: int = 1,
                        progress: Callable[[str], None] = print, depth: int = 1,
                        model: str = "cnn") -> list[PlacementRow]:
    """Calibrate on equal clients, then predict and run three placements with slowed ones.

    ``repeat`` runs each placement that many times, interleaved, and keeps its fastest round
    (Note: fastest round). ``model`` is a key of :data:`MODELS`; ``epochs`` and ``batch_size``
    default to its own.
    """
    chosen = MODELS[model]
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]  # other work on the host slows every round
    shape = (rounds, epochs or chosen.epochs, batch_size or chosen.batch_size, depth)
    even = [1.0] * len(slowdown)
    base = out / "calibration.env"
    base.write_text(_env_text(ALL_LOCAL, even, *shape, model=chosen))
    settings = load(base, environ={}, env_file_required=True)
    _, plan = prepare(base, env_file_required=True)
    p = plan.num_partitions  # 4 for every model of MODELS, as the seed example needs
    profile = profile_partitions(settings.training, iterations=30)
    progress(f"profile: {sum(profile.forward) + sum(profile.backward):.4f} s a batch")
    pair = [("calibrate_all_local", ALL_LOCAL), ("calibrate_seed_example", SEED_EXAMPLE)]
    calibration = _interleaved(out, pair, even, shape, chosen, repeat, progress)
    base_overheads = Overheads(cores=os.cpu_count())
    start = auto_plan(settings, plan, profile, base_overheads, budget_seconds=0)
    overheads = measure(start.costs, plan.owners, start.batches, calibration[0][1],
                        (_offload(SEED_EXAMPLE, p), calibration[1][1]), base_overheads, depth, p)
    measured_calibration = auto_plan(settings, plan, profile, overheads, budget_seconds=0)
    checks = [(offload, seconds, evaluate(
        len(slowdown), p, plan.owners, offload, measured_calibration.costs,
        measured_calibration.batches, depth).seconds)
              for offload, (seconds, _) in zip((_offload(lists, p) for _, lists in pair),
                                               calibration, strict=True)]
    progress(f"measured: {overheads}; calibration rounds predicted / measured: "
             + ", ".join(f"{t:.3f} / {m:.3f} s ({(t - m) / m:+.0%})" for _, m, t in checks))
    slow_env = out / "all_local.env"
    slow_env.write_text(_env_text(ALL_LOCAL, slowdown, *shape, model=chosen))
    slow = load(slow_env, environ={}, env_file_required=True)
    auto = auto_plan(slow, plan, profile, overheads, budget_seconds=budget)
    auto_lists = [list(x) for x in auto.search.best.lists]
    cases = [("all-local", ALL_LOCAL), ("seed example", SEED_EXAMPLE), ("--auto", auto_lists)]
    measured = _interleaved(out, [(n.strip("-").replace(" ", "_"), lists) for n, lists in cases],
                            slowdown, shape, chosen, repeat, progress)
    rows = []
    for (name, lists), (seconds, _) in zip(cases, measured, strict=True):
        predicted = evaluate(len(slowdown), p, plan.owners, _offload(lists, p), auto.costs,
                             auto.batches, depth).seconds
        rows.append(PlacementRow(name, lists, predicted, seconds, "held out"))
        progress(f"{name}: predicted {predicted:.3f} s, measured {seconds:.3f} s a round")
    (out / "placement.json").write_text(json.dumps(
        {"model": model, "slowdown": slowdown, "shape": shape, "repeat": repeat,
         "load_average": [load_before, os.getloadavg()[0]], "overheads": overheads.__dict__,
         "calibration": [{"offload": str(o), "seconds": m, "predicted": t}
                         for o, m, t in checks],
         "rows": [r.__dict__ for r in rows]}, indent=2))
    return rows


def placement_table(rows: list[PlacementRow], slowdown: list[float]) -> str:
    """Return the markdown table: predicted, measured, error, speedup of --auto over each."""
    auto = rows[-1].measured
    lines = [f"slowdown by client: {slowdown}",
             "| placement | predicted s/round | measured s/round | error | role | "
             "--auto speedup |", "|---|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.predicted:.3f} | {r.measured:.3f} | {r.error:+.0%} | "
                     f"{r.role} | {r.measured / auto:.2f}x |")
    return "\n".join(lines)
