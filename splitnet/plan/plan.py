"""The execution plan as plain data, built once from the training settings; no I/O.

Every client builds the plan from the same training settings with the same code;
:attr:`Plan.fingerprint` hashes every fact that must match across clients, and :meth:`Plan.facts`
lets a client say *what* differs when a peer's fingerprint does not match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from splitnet.config.settings import TrainingSettings
from splitnet.errors import ConfigError, Violation
from splitnet.plan.rules import check_placement
from splitnet.plan.schedule import DryRun, dry_run
from splitnet.plan.task import Task, partition_of, stage_of

__all__ = ["Plan", "build_plan", "describe_difference", "plan_violations"]


@dataclass(frozen=True)
class Plan:
    """Who runs what: the runner of every (owner, partition) and every client's ordered tasks."""

    training: TrainingSettings
    client_tasks: tuple[tuple[Task, ...], ...]
    runners: Mapping[tuple[int, int], int]
    owners: tuple[int, ...]
    dropped: tuple[int, ...] = ()  # clients left out after a loss (plan/drop.py)
    shard_owners: tuple[int, ...] = ()  # the owners shards were cut for (empty: ``owners``)
    ancestors: tuple[str, ...] = ()  # fingerprints of the plans this one was derived from

    @property
    def clients(self) -> tuple[int, ...]:
        """Return the clients of the run: 1..N but those dropped."""
        return tuple(c for c in range(1, self.num_clients + 1) if c not in self.dropped)

    @property
    def base_fingerprint(self) -> str:
        """Return the fingerprint of the plan the run started with."""
        return self.ancestors[0] if self.ancestors else self.fingerprint

    @property
    def num_clients(self) -> int:
        """Return N."""
        return self.training.num_clients

    @property
    def num_partitions(self) -> int:
        """Return P."""
        return self.training.num_partitions

    @property
    def helpers(self) -> tuple[int, ...]:
        """Return the clients that own no data (they only run others' partitions)."""
        return tuple(c for c in self.clients if c not in self.owners)

    def runner(self, owner: int, partition: int) -> int:
        """Return the client that runs ``owner``'s ``partition`` (forward and backward)."""
        return self.runners[(owner, partition)]

    def holders(self) -> dict[int, list[int]]:
        """Return, for each partition, the clients that run some owner's copy of it (ascending)."""
        return {p: sorted({self.runner(o, p) for o in self.owners})
                for p in range(1, self.num_partitions + 1)}

    def runner_of(self, task: Task) -> int:
        """Return the client that runs ``task``."""
        return self.runners[(task.owner, partition_of(task.stage, self.num_partitions))]

    def tasks_of(self, client: int) -> tuple[Task, ...]:
        """Return ``client``'s tasks in its order of preference."""
        return self.client_tasks[client - 1]

    def replicas_of(self, client: int) -> list[tuple[int, int]]:
        """Return the (owner, partition) replicas ``client`` keeps."""
        return sorted(key for key, runner in self.runners.items() if runner == client)

    def offloads(self) -> list[tuple[int, int, int]]:
        """Return (owner, partition, runner) for every partition run away from its owner."""
        return sorted((o, p, r) for (o, p), r in self.runners.items() if r != o)

    def shard_of(self, owner: int) -> int:
        """Return the 0-based training shard of ``owner`` (owners in order take shards 0, 1, …)."""
        return (self.shard_owners or self.owners).index(owner)

    @property
    def num_shards(self) -> int:
        """Return how many shards the training set is cut into."""
        return self.training.dataset_n_splits or len(self.shard_owners or self.owners)

    def facts(self) -> dict[str, Any]:
        """Return every fact that must be equal on all clients, as plain JSON data."""
        s = self.training
        facts: dict[str, Any] = {
            "clients": s.num_clients,
            "model": s.model,
            "partitions": self.num_partitions,
            "dataset": s.dataset,
            "batch_size": s.batch_size,
            "rounds": s.num_rounds,
            "epochs": s.num_epochs,
            "shards": self.num_shards,
            "partitioning": s.data_partitioning,
            "seed": s.seed,
            "learning_rate": s.learning_rate,
            "optimizer": s.optimizer,
            "server": s.server_number,
            "tasks": [[str(t) for t in tasks] for tasks in self.client_tasks],
        }
        if s.model == "BERT":
            facts["bert_model"] = s.bert_model
        if s.data_partitioning == "dirichlet":
            facts["dirichlet_alpha"] = s.dirichlet_alpha
        if s.secure_aggregation:
            facts["secure_aggregation"] = True
        if s.aggregation != "central":  # who averages; absent when central (fingerprints kept)
            facts["aggregation"] = s.aggregation
        if s.pipeline_depth > 1:  # changes the math; absent at 1 (fingerprints unchanged)
            facts["pipeline_depth"] = s.pipeline_depth
        if s.micro_batches > 1:
            facts["micro_batches"] = s.micro_batches
        if s.dp:  # noise at the cut changes the math; absent when off (fingerprints unchanged)
            facts["dp"] = {"activations": s.dp_activations, "gradients": s.dp_gradients,
                           "clip": s.dp_clip, "gradient_clip": s.dp_gradient_clip,
                           "noise_multiplier": s.dp_noise_multiplier,
                           "delta": s.dp_delta}
        if self.dropped:  # a plan derived after a loss (plan/drop.py); the base one is unchanged
            facts["dropped"] = list(self.dropped)
            facts["base"] = self.base_fingerprint
        return facts

    @property
    def fingerprint(self) -> str:
        """Return a stable hash of :meth:`facts` (16 hex digits)."""
        blob = json.dumps(self.facts(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def dry_run(self) -> DryRun:
        """Simulate one batch of every owner under the runtime's scheduling."""
        return dry_run(self.client_tasks)

    def summary(self) -> str:
        """Return the one-paragraph summary ``splitnet validate`` prints."""
        p = self.num_partitions
        offloads = self.offloads()
        if offloads:
            offload_text = (f"{len(offloads)} partition(s) offloaded: "
                            f"{'; '.join(_offload_ranges(offloads))}.")
        else:
            offload_text = "Every partition runs on its owner (nothing offloaded)."
        helpers = ", ".join(map(str, self.helpers)) or "none"
        s = self.training
        return (
            f"Valid plan: {self.num_clients} client{'' if self.num_clients == 1 else 's'}; "
            f"data owners "
            f"{', '.join(map(str, self.owners))}; data-less helpers {helpers}. Model {s.model} "
            f"in {p} partitions ({2 * p} stages) on {s.dataset}, {s.num_rounds} round(s) of "
            f"{s.num_epochs} epoch(s), batch {s.batch_size}, aggregator client "
            f"{s.server_number}. {offload_text}{_pipelining_text(s)} Fingerprint "
            f"{self.fingerprint}."
        )


def build_plan(training: TrainingSettings) -> Plan:
    """Check every placement rule against ``training``; raise one ConfigError listing all."""
    plan, violations = _check(training)
    if violations or plan is None:
        raise ConfigError(violations)
    return plan


def plan_violations(training: TrainingSettings) -> list[Violation]:
    """Return every placement violation of ``training`` (a ``check`` for ``config.load``)."""
    return _check(training)[1]


def _pipelining_text(s: TrainingSettings) -> str:
    """Say what PIPELINE_DEPTH and MICRO_BATCHES do to the math (nothing when both are 1)."""
    text = ""
    if s.pipeline_depth > 1:
        text += (f" Pipeline depth {s.pipeline_depth}: up to {s.pipeline_depth} batches of an "
                 f"owner in flight, each on weights up to {s.pipeline_depth - 1} step(s) stale "
                 "(weight stashing): not exact SGD.")
    if s.aggregation == "reduce":
        text += (" AGGREGATION=reduce: each partition's holders average it among themselves "
                 "(reduce-scatter, all-gather); the aggregator only evaluates and records.")
    if s.micro_batches > 1:
        text += (f" {s.micro_batches} micro-batches a batch (GPipe): one step per batch, exact "
                 "up to float rounding (BatchNorm sees micro-batch statistics).")
    return text


def _model_label(training: TrainingSettings) -> str:
    """Name the model as the settings do, e.g. ``CURRENT_MODEL=BERT (BERT_MODEL=tiny)``."""
    label = f"CURRENT_MODEL={training.model}"
    return f"{label} (BERT_MODEL={training.bert_model})" if training.model == "BERT" else label


def _check(training: TrainingSettings) -> tuple[Plan | None, list[Violation]]:
    placement, violations = check_placement(
        training.stages_clients, training.num_clients, training.num_partitions,
        _model_label(training), training.pair_stages, training.dataset_n_splits)
    if violations:
        return None, violations
    p = training.num_partitions
    runners = {
        (task.owner, partition_of(task.stage, p)): client
        for task, client in placement.runner_of_task.items()
        if task.stage == stage_of(partition_of(task.stage, p), p, forward=True)
    }
    plan = Plan(training, placement.client_tasks, runners, placement.owners)
    if training.secure_aggregation and len(placement.owners) < 2:
        violations.append(Violation(
            "setting", f"SECURE_AGGREGATION=on needs at least 2 owners; this plan has "
                       f"{len(placement.owners)}: the aggregator would learn that owner's "
                       "weights, which the sum is meant to hide"))
        return None, violations
    unfinished = plan.dry_run().unfinished
    if unfinished:  # cannot happen once coverage holds; kept as the proof's check
        violations.append(Violation("schedule", "the dry run cannot complete: "
                                    + ", ".join(map(str, unfinished))))
        return None, violations
    return plan, violations


def _offload_ranges(offloads: list[tuple[int, int, int]]) -> list[str]:
    """Group (owner, partition, runner) into "owner 1's partitions 2-5 → client 4"."""
    groups: list[list[int]] = []  # [owner, first, last, runner]
    for owner, partition, runner in offloads:
        last = groups[-1] if groups else None
        if last and last[0] == owner and last[3] == runner and last[2] == partition - 1:
            last[2] = partition
        else:
            groups.append([owner, partition, partition, runner])
    return [
        f"owner {o}'s partition{'s' if a != b else ''} {a if a == b else f'{a}-{b}'} → client {r}"
        for o, a, b, r in groups
    ]


def describe_difference(ours: dict[str, Any], theirs: dict[str, Any], me: int,
                        other: int, labels: tuple[str, str] | None = None) -> str:
    """Say in which facts two clients' plans differ, e.g. "seed (client 1: 42, client 2: 7)".

    ``labels`` names the two sides instead (e.g. ``("this run", "the checkpoint")``).
    """
    mine, yours = labels or (f"client {me}", f"client {other}")
    parts = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if a == b:
            continue
        if key == "tasks" and isinstance(a, list) and isinstance(b, list):
            differing = [str(i + 1) for i in range(max(len(a), len(b)))
                         if (a[i] if i < len(a) else None) != (b[i] if i < len(b) else None)]
            parts.append(f"task lists (client(s) {', '.join(differing)})")
        else:
            parts.append(f"{key} ({mine}: {a}, {yours}: {b})")
    return "; ".join(parts) or "fingerprint only"
