"""``splitnet profile`` and ``splitnet plan --auto``: measure, predict, search, print.

The profile comes from ``--profile F`` (what ``splitnet profile --out F`` wrote, maybe on another
machine) or is measured here. Speeds, links and the RTT come from ``CLIENT_SPEED``,
``CLIENT_BANDWIDTH`` and ``CLIENT_RTT``. ``splitnet bench placement`` measures the prediction's
overheads (per message, per step, per client and round, the compute scale) in ``splitnet local``
runs (:mod:`splitnet.bench.placement_fit`); the defaults below, which ``plan --auto`` uses, are
figures of earlier such runs (the message CPU), or none.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from splitnet.config.costs import bytes_per_second, rtt_seconds
from splitnet.config.settings import Settings
from splitnet.errors import ConfigError, Violation
from splitnet.learning.profile import Profile, batches_per_round, profile_partitions
from splitnet.learning.threads import apply_client_threads
from splitnet.plan.plan import Plan
from splitnet.plan.search import Candidate, Search, evaluate, search
from splitnet.plan.simulate import Costs

__all__ = ["Overheads", "AutoResult", "auto_plan", "check_profile", "costs_for", "format_auto",
           "format_profile", "load_profile", "profile_here", "profile_text", "speed_example"]

DEFAULT_BUDGET_SECONDS = 10.0
"""How long ``plan --auto``'s search for moves may take unless ``--budget`` says."""


@dataclass(frozen=True)
class Overheads:
    """Fixed costs the profile does not see, in seconds (measured, see BENCHMARKS.md)."""

    message: float = 0.001  # latency a message adds (event-loop hops), seconds
    step: float = 0.0  # CPU a step adds to the profile's (optimizer, bookkeeping), seconds
    round: float = 0.03  # wall time after the last batch (the exchange's share), seconds
    cores: int | None = None  # clients sharing one host's cores (splitnet local): how many
    message_cpu: float = 0.0016  # CPU a message costs each end (serialise, TLS, gRPC), seconds
    scale: float = 1.0  # the runtime's compute time over the profile's
    compute_cpu: float = 1.0  # CPU seconds in a second of that compute (Note: slept CPU)
    round_cpu: tuple[float, ...] = ()  # by client: CPU a round beside steps and messages


@dataclass(frozen=True)
class AutoResult:
    """What ``plan --auto`` found: the search, the current placement's prediction, the inputs."""

    search: Search
    current: Candidate
    batches: dict[int, int]
    profile: Profile
    costs: Costs


def load_profile(path: Path) -> Profile:
    """Read a profile JSON; a bad file is a ConfigError naming it."""
    try:
        return Profile.from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ConfigError(Violation("usage", f"--profile {path}: {exc}"),
                          "the command line") from None


def _per_client(values: tuple[float, ...] | None, n: int, default: float) -> tuple[float, ...]:
    if values is None:
        return (default,) * n
    return values * n if len(values) == 1 else values


def check_profile(settings: Settings, profile: Profile) -> None:
    """Refuse a profile of another model, partition count or dataset (ConfigError).

    A profile written before profiles recorded their dataset is taken for any dataset.
    """
    training = settings.training
    p = training.num_partitions
    if len(profile.forward) != p or profile.model != training.model:
        raise ConfigError(Violation(
            "usage", f"the profile is of {profile.model} with {len(profile.forward)} partitions "
                     f"but CURRENT_MODEL={training.model} has {p}; run `splitnet "
                     "profile` with this .env"), "the command line")
    if profile.dataset is not None and profile.dataset != training.dataset:
        raise ConfigError(Violation(
            "usage", f"the profile was measured on CURRENT_DATASET={profile.dataset} but this "
                     f".env has CURRENT_DATASET={training.dataset} (other inputs, other times "
                     "and sizes); run `splitnet profile` with this .env"), "the command line")


def costs_for(settings: Settings, profile: Profile, overheads: Overheads) -> Costs:
    """Return the simulator's costs from the settings, a profile and the overheads."""
    n = settings.training.num_clients
    check_profile(settings, profile)
    # Note: linear in the batch. A profile taken at another batch size is scaled linearly (its
    # times also by the calibrated compute scale, its bytes not).
    batch = settings.training.batch_size / profile.batch_size
    scale = overheads.scale * batch
    s, shaping = settings.placement, settings.shaping
    # Note: shaped defaults. Unset, the links are UPLOAD_BANDWIDTH (every client's egress cap)
    # and the RTT twice NETWORK_DELAY (added each way), as the containers shape them.
    bandwidth = s.client_bandwidth or (
        (bytes_per_second(shaping.upload_bandwidth),) if shaping.upload_bandwidth else None)
    rtt = s.client_rtt if s.client_rtt is not None else (
        2 * rtt_seconds(shaping.network_delay) if shaping.network_delay else 0.0)
    links = _per_client(bandwidth, n, math.inf)
    # Note: round-end exchange. Central averaging moves every owner's replica to the aggregator
    # and the averaged model back: 2 x owners x the model over the aggregator's link, the same
    # for every placement (it shifts the predictions, never the choice). AGGREGATION=reduce
    # moves about 2 x the model through each client (reduce-scatter, then all-gather): the
    # slowest link bounds it. An approximation: a holder of k replicas sends k chunks (never
    # pre-summed), which this fixed cost does not see.
    if settings.training.aggregation == "reduce":
        exchange = 2 * profile.model_bytes / min(links)
    else:
        owners = len({task.split("_")[0] for tasks in settings.training.stages_clients
                      for task in tasks})
        exchange = 2 * owners * profile.model_bytes / links[settings.training.server_number - 1]
    return Costs(tuple(t * scale for t in profile.forward),
                 tuple(t * scale for t in profile.backward),
                 tuple(int(b * batch) for b in profile.activation_bytes),
                 _per_client(s.client_speed, n, 1.0), links,
                 rtt, overheads.message, overheads.step, overheads.round + exchange,
                 overheads.cores, overheads.message_cpu, overheads.compute_cpu,
                 overheads.round_cpu)


def auto_plan(settings: Settings, plan: Plan, profile: Profile | None = None,
              overheads: Overheads | None = None,
              budget_seconds: float = DEFAULT_BUDGET_SECONDS) -> AutoResult:
    """Profile (unless given), predict the current placement and search for the best one."""
    t = settings.training
    if profile is not None:
        check_profile(settings, profile)  # before the data is read
    shard_order = plan.shard_owners or plan.owners  # the data first: a missing set fails fast
    all_batches = batches_per_round(t, settings.data, tuple(shard_order), plan.num_shards)
    batches = {o: all_batches[o] for o in plan.owners}
    profile = profile or profile_here(settings)
    costs = costs_for(settings, profile, overheads or Overheads())
    p = plan.num_partitions
    current_offload = {(o, q): r for (o, q), r in plan.runners.items()
                       if r != o and 1 < q < p}
    current = evaluate(t.num_clients, p, plan.owners, current_offload, costs, batches,
                       t.pipeline_depth)
    result = search(t.num_clients, p, plan.owners, costs, batches, t.pipeline_depth,
                    start=current_offload, budget_seconds=budget_seconds)
    return AutoResult(result, current, batches, profile, costs)


def format_auto(result: AutoResult) -> str:
    """Return what ``plan --auto`` prints: the chosen lists and the predictions."""
    best, local, current = result.search.best, result.search.all_local, result.current
    lists = json.dumps([list(x) for x in best.lists], separators=(",", ":"))
    moved = ", ".join(f"{o}:{q}={r}" for (o, q), r in sorted(best.offload.items())) or "none"
    lines = [
        f"Predicted round time (s): chosen {best.seconds:.3f}; all-local {local.seconds:.3f} "
        f"({local.seconds / best.seconds:.2f}x the chosen); current .env {current.seconds:.3f}.",
        f"Moved partitions (owner:partition=runner): {moved}.",
        f"Searched {result.search.evaluated} placement(s)"
        + ("" if result.search.complete else " (time budget spent before a local optimum)")
        + f"; batches a round by owner: {result.batches}.",
        "SIMULATION_STAGES_CLIENTS=" + lists,
    ]
    return "\n".join(lines)


def profile_here(settings: Settings, iterations: int = 10) -> Profile:
    """Profile the configured model on this machine at the threads a client computes with.

    The thread counts are set by the client's own function (``apply_client_threads``): with
    ``TORCH_THREADS`` unset, torch's default, as ``splitnet run`` keeps it.
    """
    threads = apply_client_threads(settings.output)
    return profile_partitions(settings.training, iterations=iterations, threads=threads)


def speed_example(num_clients: int) -> str:
    """Return an example ``CLIENT_SPEED`` list for ``num_clients`` clients (half of them at 0.5)."""
    fast = (num_clients + 1) // 2
    return "[" + ",".join(["1"] * fast + ["0.5"] * (num_clients - fast)) + "]"


def profile_text(profile: Profile, num_clients: int) -> str:
    """Return the table ``splitnet profile`` prints and the lines to paste into .env.

    The ``CLIENT_SPEED`` example has one speed per configured client (``NUM_CLIENTS``).
    """
    rows = [f"{profile.model}, batch {profile.batch_size}, {profile.threads} thread(s); "
            "median seconds per batch on this machine:",
            "partition  forward_ms  backward_ms  hands_on_bytes"]
    for q, (f, b, size) in enumerate(zip(profile.forward, profile.backward,
                                         profile.activation_bytes, strict=True), 1):
        rows.append(f"{q:>9}  {f * 1e3:>10.3f}  {b * 1e3:>11.3f}  {size:>14}")
    total = sum(profile.forward) + sum(profile.backward)
    rows += [f"total {total * 1e3:.3f} ms a batch; model {profile.model_bytes} bytes.",
             "This machine is speed 1: give each client its speed relative to it, e.g.",
             f"CLIENT_SPEED={speed_example(num_clients)}   # run `splitnet profile` on each "
             "and divide this total by its total"]
    return "\n".join(rows)


def format_profile(profile: Profile) -> str:
    """Return the profile as JSON text (``--out``)."""
    return json.dumps(profile.as_json(), indent=2)
