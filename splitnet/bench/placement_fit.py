"""Fit the prediction's free constants to measured ``splitnet local`` rounds (bench placement).

Two measured rounds with equal clients: all-local (no message) and a placement with messages.
Their wall times give the compute scale (the runtime's compute time over the profile's) and the
CPU a message costs. All-local's timeline also gives the CPU its steps used (:func:`step_cpu`,
the ``cpu`` column): ``compute_cpu`` is that CPU over the fitted compute seconds (Note: slept CPU
in :mod:`splitnet.plan.simulate`), what a slowed client of the test hook waits out per second of
compute. Other work on the host stretches the wall times, not the CPU.

Note: no step-CPU split. Fitting a CPU cost per step from the two runs' step CPU (the seed
example runs 5.4 times as many steps) was tried and dropped: the same run's step CPU moves by
~15 % from round to round on a loaded host, as much as the split's whole signal, and the fitted
3 ms a step tripled the predicted cost of a slowed owner's small endpoint steps (BENCHMARKS.md,
Session 8).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from splitnet.ops.autoplan import Overheads
from splitnet.plan.search import evaluate
from splitnet.plan.simulate import Costs

__all__ = ["Offload", "calibrate", "compute_seconds", "step_cpu"]

Offload = dict[tuple[int, int], int]


def step_cpu(folder: Path) -> tuple[float, float]:
    """Return the CPU seconds a round's compute steps used, all clients together, and the steps.

    Medians over the run's rounds after the first (warm-up) one, from the ``cpu`` column of
    ``timeline-client*.csv``; (0, 0) when no row has one (a timeline written before the column).
    """
    by_round: dict[int, list[float]] = {}
    for path in sorted(folder.glob("timeline-client*.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row["kind"] == "compute" and row.get("cpu"):
                    by_round.setdefault(int(row["round"]), []).append(float(row["cpu"]))
    rounds = [by_round[r] for r in sorted(by_round)][1:] or list(by_round.values())
    if not rounds:
        return 0.0, 0.0
    return (statistics.median(sum(r) for r in rounds),
            statistics.median(float(len(r)) for r in rounds))


def compute_seconds(costs: Costs, batches: Mapping[int, int]) -> float:
    """Return the compute seconds of one round at ``costs`` (every owner's batches, speed 1)."""
    return (sum(costs.forward) + sum(costs.backward)) * sum(batches.values())


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
              measured: list[tuple[Offload, float]], base: Overheads | None = None,
              depth: int = 1, p: int = 4, cpu: float | None = None) -> tuple[Overheads, float]:
    """Fit the compute scale, then the message CPU, to measured rounds.

    Returns the overheads and the worst relative error over ``measured``.

    ``measured[0]`` must be all-local: it sends no message, so it alone fixes the compute scale
    (the runtime's compute over the profile's). ``measured[1]`` (placements with messages) then
    fixes the CPU a message costs. Two one-number fits, each as close as it can be: the two
    constants are no longer traded against each other. ``costs`` are those of ``base`` (default
    ``Overheads()``), whose latency, step cost, round end and cores are kept. ``cpu``: the CPU
    seconds all-local's round of compute steps used (:func:`step_cpu`); with it ``compute_cpu``
    is fitted too (the module's docstring), else it stays as in ``base``.
    """
    base = base or Overheads()
    (local, local_seconds), (other, other_seconds) = measured[0], measured[1]
    if local:
        raise ValueError("calibrate: the first measured round must be all-local")
    n = len(costs.speed)

    def scaled(scale: float, message_cpu: float) -> Costs:
        return replace(costs, forward=tuple(t * scale for t in costs.forward),
                       backward=tuple(t * scale for t in costs.backward),
                       message_cpu=message_cpu)

    def seconds(offload: Offload, trial: Costs) -> float:
        return evaluate(n, p, owners, offload, trial, batches, depth).seconds

    scale = round(_solve(lambda x: seconds(local, scaled(x, 0.0)), local_seconds, 0.01, 20.0), 6)
    # Note: scan, not bisect. The round is not monotone in the message CPU (a slower message can
    # reorder two ready steps for the better), so the fit scans 0..10 ms in 20 us steps.
    message_cpu = min((i * 2e-5 for i in range(501)),
                      key=lambda x: abs(seconds(other, scaled(scale, x)) - other_seconds))
    fitted = scaled(scale, message_cpu)
    worst = max(abs(seconds(o, fitted) - t) / t for o, t in measured)
    if not cpu:
        return replace(base, message_cpu=message_cpu, scale=scale), worst
    # equal clients: compute_cpu does not enter the two fitted rounds
    return replace(base, message_cpu=message_cpu, scale=scale,
                   compute_cpu=round(cpu / compute_seconds(fitted, batches), 6)), worst
