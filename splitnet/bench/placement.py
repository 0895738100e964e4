"""``splitnet bench placement``: predicted vs measured round time, and what --auto buys.

One bench, one machine. The partitions are profiled here; five CNN clients train with real
``splitnet local`` runs; the slow ones are made slow with the test-only
``SPLITNET_TEST_SLOWDOWN`` (:mod:`splitnet.learning.slowdown`: a step sleeps (k-1) x its CPU
time) and declared with ``CLIENT_SPEED`` = 1 / slowdown. Order:

1. calibration, every client at full speed: all-local and the seed example
   (``example_configurations/cnn_cross_offload.env``'s lists) run, and the prediction's free
   constants are fitted to those two rounds (:func:`calibrate`): all-local sends no message,
   so it fixes the compute scale; the seed example then fixes the CPU a message costs;
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
from dataclasses import dataclass, replace
from pathlib import Path

from splitnet.config import load
from splitnet.learning.profile import profile_partitions
from splitnet.learning.slowdown import ENV_KEY
from splitnet.ops.autoplan import Overheads, auto_plan
from splitnet.ops.local import run_local
from splitnet.ops.prepare import prepare
from splitnet.plan.search import evaluate
from splitnet.plan.simulate import Costs

__all__ = ["SEED_EXAMPLE", "PlacementRow", "calibrate", "placement_table", "run_placement_bench"]

SEED_EXAMPLE = [["1_1", "1_2", "4_3", "1_4", "1_5", "4_6", "1_7", "1_8"],
                ["2_1", "2_2", "1_3", "2_4", "2_5", "1_6", "2_7", "2_8"],
                ["3_1", "5_2", "5_3", "3_4", "3_5", "5_6", "5_7", "3_8"],
                ["4_1", "4_2", "3_3", "4_4", "4_5", "3_6", "4_7", "4_8"],
                ["5_1", "3_2", "2_3", "5_4", "5_5", "2_6", "3_7", "5_8"]]
"""``example_configurations/cnn_cross_offload.env``'s lists (the seed example placement)."""
ALL_LOCAL = [[f"{o}_{s}" for s in range(1, 9)] for o in range(1, 6)]
Offload = dict[tuple[int, int], int]


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
              batch_size: int, depth: int = 1) -> str:
    speeds = ",".join(f"{1 / k:.6g}" for k in slowdown)
    return "\n".join([
        f"NUM_CLIENTS={len(lists)}", "CURRENT_MODEL=CNN", "CURRENT_DATASET=DIGITS",
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


def _offload(lists: list[list[str]]) -> Offload:
    """Return (owner, partition) → runner of the forward tasks run away from their owner."""
    moved: Offload = {}
    for client, tasks in enumerate(lists, 1):
        for text in tasks:
            owner, stage = map(int, text.split("_"))
            if stage <= 4 and client != owner:
                moved[(owner, stage)] = client
    return moved


def _solve(predicted: Callable[[float], float], target: float, low: float,
           high: float) -> float:
    """Return x in [low, high] where the increasing ``predicted(x)`` meets ``target``.

    Bisection; the nearer end when it does not meet it.
    """
    if predicted(low) >= target:
        return low
    if predicted(high) <= target:
        return high
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if predicted(middle) < target else (low, middle)
    return (low + high) / 2


def calibrate(costs: Costs, owners: tuple[int, ...], batches: dict[int, int],
              measured: list[tuple[Offload, float]],
              base: Overheads | None = None, depth: int = 1) -> tuple[Overheads, float]:
    """Fit the compute scale, then the message CPU, to measured rounds.

    Returns the overheads and the worst relative error over ``measured``.

    ``measured[0]`` must be all-local: it sends no message, so it alone fixes the compute scale
    (the runtime's compute over the profile's). ``measured[1]`` (placements with messages) then
    fixes the CPU a message costs. Two one-number fits, each as close as it can be: the two
    constants are no longer traded against each other. ``costs`` are those of ``base`` (default
    ``Overheads()``), whose latency, step cost, round end and cores are kept.
    """
    base = base or Overheads()
    (local, local_seconds), (other, other_seconds) = measured[0], measured[1]
    if local:
        raise ValueError("calibrate: the first measured round must be all-local")
    n = len(costs.speed)

    def scaled(scale: float, cpu: float) -> Costs:
        return replace(costs, forward=tuple(t * scale for t in costs.forward),
                       backward=tuple(t * scale for t in costs.backward), message_cpu=cpu)

    def seconds(offload: Offload, trial: Costs) -> float:
        return evaluate(n, 4, owners, offload, trial, batches, depth).seconds

    scale = round(_solve(lambda x: seconds(local, scaled(x, 0.0)), local_seconds, 0.01, 20.0), 6)
    # Note: scan, not bisect. The round is not monotone in the message CPU (a slower message can
    # reorder two ready steps for the better), so the fit scans 0..10 ms in 20 us steps.
    cpu = min((i * 2e-5 for i in range(501)),
              key=lambda x: abs(seconds(other, scaled(scale, x)) - other_seconds))
    fitted = scaled(scale, cpu)
    worst = max(abs(seconds(o, fitted) - t) / t for o, t in measured)
    return replace(base, message_cpu=cpu, scale=scale), worst


def _run(out: Path, name: str, lists: list[list[str]], slowdown: list[float],
         shape: tuple[int, int, int, int]) -> float:
    """Train ``lists`` with ``splitnet local``; return the measured round seconds."""
    env = out / f"{name}.env"
    env.write_text(_env_text(lists, slowdown, *shape))
    _, plan = prepare(env, env_file_required=True)
    log = io.StringIO()
    try:
        _, folder = run_local(plan, env, out / "results",
                              extra_env={ENV_KEY: ",".join(f"{k:g}" for k in slowdown)}, out=log)
    finally:
        (out / f"{name}.log").write_text(log.getvalue())
    return _measured(folder)


def _interleaved(out: Path, cases: list[tuple[str, list[list[str]]]], slowdown: list[float],
                 shape: tuple[int, int, int, int], repeat: int,
                 progress: Callable[[str], None]) -> list[float]:
    """Run every case ``repeat`` times, interleaved (ABCABC); return each one's fastest round."""
    best = [float("inf")] * len(cases)
    for attempt in range(repeat):
        for index, (name, lists) in enumerate(cases):
            seconds = _run(out, f"{name}_{attempt + 1}", lists, slowdown, shape)
            best[index] = min(best[index], seconds)
            progress(f"{name} (run {attempt + 1}): {seconds:.3f} s a round")
    return best


def run_placement_bench(out: Path, slowdown: list[float], rounds: int = 3, epochs: int = 4,
                        batch_size: int = 32, budget: float = 10.0, repeat: int = 1,
                        progress: Callable[[str], None] = print,
                        depth: int = 1) -> list[PlacementRow]:
    """Calibrate on equal clients, then predict and run three placements with slowed ones.

    ``repeat`` runs each placement that many times, interleaved, and keeps its fastest round
    (Note: fastest round).
    """
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]  # other work on the host slows every round
    shape = (rounds, epochs, batch_size, depth)
    even = [1.0] * len(slowdown)
    base = out / "calibration.env"
    base.write_text(_env_text(ALL_LOCAL, even, *shape))
    settings = load(base, environ={}, env_file_required=True)
    _, plan = prepare(base, env_file_required=True)
    profile = profile_partitions(settings.training, iterations=30)
    progress(f"profile: {sum(profile.forward) + sum(profile.backward):.4f} s a batch")
    pair = [("calibrate_all_local", ALL_LOCAL), ("calibrate_seed_example", SEED_EXAMPLE)]
    fit = [(_offload(lists), seconds) for (_, lists), seconds in zip(
        pair, _interleaved(out, pair, even, shape, repeat, progress), strict=True)]
    base_overheads = Overheads(cores=os.cpu_count())
    start = auto_plan(settings, plan, profile, base_overheads, budget_seconds=0)
    overheads, fit_error = calibrate(start.costs, plan.owners, start.batches, fit, base_overheads,
                                     depth)
    progress(f"calibrated: {overheads} (worst fit error {fit_error:.1%})")
    slow_env = out / "all_local.env"
    slow_env.write_text(_env_text(ALL_LOCAL, slowdown, *shape))
    slow = load(slow_env, environ={}, env_file_required=True)
    auto = auto_plan(slow, plan, profile, overheads, budget_seconds=budget)
    auto_lists = [list(x) for x in auto.search.best.lists]
    cases = [("all-local", ALL_LOCAL), ("seed example", SEED_EXAMPLE), ("--auto", auto_lists)]
    measured = _interleaved(out, [(n.strip("-").replace(" ", "_"), lists) for n, lists in cases],
                            slowdown, shape, repeat, progress)
    rows = []
    for (name, lists), seconds in zip(cases, measured, strict=True):
        predicted = evaluate(len(slowdown), 4, plan.owners, _offload(lists), auto.costs,
                             auto.batches, depth).seconds
        rows.append(PlacementRow(name, lists, predicted, seconds, "held out"))
        progress(f"{name}: predicted {predicted:.3f} s, measured {seconds:.3f} s a round")
    (out / "placement.json").write_text(json.dumps(
        {"slowdown": slowdown, "shape": shape, "repeat": repeat,
         "load_average": [load_before, os.getloadavg()[0]], "overheads": overheads.__dict__,
         "calibration": [{"offload": str(o), "seconds": t} for o, t in fit],
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
