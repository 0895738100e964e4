"""Measure the prediction's constants in ``splitnet local`` runs with equal clients.

Note: measured, not fitted. Two calibration placements run first: all-local (no message) and
one with messages (the seed example). Every constant of the prediction is read from what their
processes recorded, none fitted to their wall times (which other work on the host stretches):

* the CPU a step costs beside its partitions' compute (optimizer, bookkeeping): the two
  runs train the same batches, so their steps' CPU (the timeline's ``cpu`` column,
  :func:`step_cpu`) differs by that cost times the difference in steps (324 against 60);
* the compute scale: all-local's step CPU less that cost over the profile's compute for the
  same batches: the runtime's CPU per profiled second;
* each client's CPU a round beside its steps (Note: round CPU, :func:`beside_steps`): its
  process CPU (every thread, ``client-*.json``) less its steps', in all-local: reports,
  states, loading the model, and on the aggregator averaging and evaluating (0.3 s a round
  against 0.06 s elsewhere for BERT tiny);
* the CPU a message costs each end: what the placement with messages spends beside its steps
  more than all-local, over twice its messages.

With these the simulator (``cores``: the clients share the host's cores as its scheduler
shares them, Note: shared cores) predicts both calibration rounds; their errors are reported as
a check, not minimised. Before (session 8) the scale and message CPU were fitted to the two
rounds' wall times: the fit absorbed the aggregator's work and the host's load into the compute
scale, under-predicted every placement whose busiest client is the aggregator by ~20 %, and the
search loaded the aggregator with the slow owners' middles; the CNN's many-step placements were
under-predicted by ~30 % without the step cost (BENCHMARKS.md, Session 12). The step cost was
tried in session 8 from one run of each and dropped (a run's step CPU moved ~15 % from round to
round on a loaded host); read from the least disturbed of each placement's runs, it kept every
row of four runs here within 13 %.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from splitnet.ops.autoplan import Overheads
from splitnet.plan.generate import generate_lists
from splitnet.plan.simulate import Costs, predict
from splitnet.plan.task import Task

__all__ = ["Offload", "beside_steps", "compute_seconds", "measure", "step_cpu"]

Offload = dict[tuple[int, int], int]


def _steps_by_round(timeline: Path) -> dict[int, list[float]]:
    """Return a timeline file's compute steps' CPU seconds by round (rows with a ``cpu``)."""
    by_round: dict[int, list[float]] = {}
    with timeline.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["kind"] == "compute" and row.get("cpu"):
                by_round.setdefault(int(row["round"]), []).append(float(row["cpu"]))
    return by_round


def step_cpu(folder: Path) -> tuple[float, float]:
    """Return the CPU seconds a round's compute steps used, all clients together, and the steps.

    Medians over the run's rounds after the first (warm-up) one, from the ``cpu`` column of
    ``timeline-client*.csv``; (0, 0) when no row has one (a timeline written before the column).
    """
    by_round: dict[int, list[float]] = {}
    for path in sorted(folder.glob("timeline-client*.csv")):
        for round_, cpu in _steps_by_round(path).items():
            by_round.setdefault(round_, []).extend(cpu)
    rounds = [by_round[r] for r in sorted(by_round)][1:] or list(by_round.values())
    if not rounds:
        return 0.0, 0.0
    return (statistics.median(sum(r) for r in rounds),
            statistics.median(float(len(r)) for r in rounds))


def beside_steps(folder: Path, clients: int) -> tuple[float, ...]:
    """Return each client's CPU seconds a round beside its compute steps (Note: round CPU).

    Its process CPU (``client-*.json``'s ``process_cpu_seconds``, every thread) less its
    steps' CPU (the timeline's ``cpu`` column), the median over the rounds after the first; ()
    when a client did not record its process CPU.
    """
    result = []
    for client in range(1, clients + 1):
        facts = folder / f"client-{client}.json"
        recorded = json.loads(facts.read_text()).get("process_cpu_seconds") \
            if facts.is_file() else None
        if not recorded:
            return ()
        steps = _steps_by_round(folder / f"timeline-client{client}.csv")
        rounds = sorted(int(r) for r in recorded)
        result.append(statistics.median(max(0.0, float(recorded[str(r)]) - sum(steps.get(r, ())))
                                        for r in rounds[1:] or rounds))
    return tuple(result)


def compute_seconds(costs: Costs, batches: Mapping[int, int]) -> float:
    """Return the compute seconds of one round at ``costs`` (every owner's batches, speed 1)."""
    return (sum(costs.forward) + sum(costs.backward)) * sum(batches.values())


def _median_each(rows: list[tuple[float, ...]]) -> tuple[float, ...]:
    """Return the median of each column of equal-length rows; () when any row is empty."""
    if not rows or not all(rows):
        return ()
    return tuple(statistics.median(column) for column in zip(*rows, strict=True))


def measure(costs: Costs, owners: tuple[int, ...], batches: dict[int, int],
            local: list[Path], other: tuple[Offload, list[Path]], base: Overheads,
            depth: int = 1, p: int = 4) -> Overheads:
    """Return ``base`` with the constants measured in the calibration runs (the docstring).

    ``costs`` are those of ``base`` at scale 1; ``local``: all-local's run folders; ``other``:
    the placement with messages and its run folders. A run without process CPU (written before
    it was recorded) gives no round CPU and no message CPU.
    """
    n = len(costs.speed)
    (home_cpu, home_steps), (away_cpu, away_steps) = (
        min(step_cpu(f) for f in runs) for runs in (local, other[1]))  # the least disturbed
    if home_cpu <= 0:
        raise ValueError("measure: the all-local runs recorded no step CPU (timeline cpu column)")
    work = compute_seconds(costs, batches)
    step = max(0.0, (away_cpu - home_cpu) / (away_steps - home_steps)) \
        if away_steps > home_steps else 0.0
    if home_cpu - home_steps * step <= 0:  # the difference is not a step cost: none
        step = 0.0
    scale = (home_cpu - home_steps * step) / work
    home = _median_each([beside_steps(f, n) for f in local])
    away = _median_each([beside_steps(f, n) for f in other[1]])
    tasks = [[Task.parse(t) for t in x] for x in generate_lists(n, p, owners, other[0])]
    messages = predict(tasks, p, costs, batches, depth).messages
    message_cpu = max(0.0, sum(away) - sum(home)) / (2 * messages) \
        if home and away and messages else 0.0
    return replace(base, scale=round(scale, 6), step=round(step, 7),
                   message_cpu=round(message_cpu, 7),
                   round_cpu=tuple(round(t, 6) for t in home), compute_cpu=1.0)
