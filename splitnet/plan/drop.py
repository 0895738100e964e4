"""The plan after lost clients are dropped (``FAILURE_POLICY=drop``): who runs what now.

:func:`without` derives the survivors' plan from the running one, the same on every survivor
(it depends only on the plan and the lost clients): the lost clients' own owner tasks leave the
plan; partitions they ran for other owners go home to those owners, and every other offload
stays where it was. The task lists are written by the generator (:mod:`splitnet.plan.generate`)
and checked against every placement rule, like a plan from ``.env``. If the aggregator is
lost, the lowest-numbered survivor takes the role. Shards keep their owners (an owner trains the
same data as before the loss). The derived plan's facts name the dropped clients and the base
plan, so its fingerprint differs from the base one's and from any other drop's.

Note: quorum. A client that cannot reach its peers may be the one cut off (a network
partition), not they: it goes on without them only if its side holds more than half of the
run's clients, or exactly half with the lowest-numbered one (:func:`has_quorum`). Otherwise it
stops, and the two sides never train two versions of the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from splitnet.errors import ConfigError
from splitnet.plan.generate import generate_lists
from splitnet.plan.plan import Plan, build_plan

__all__ = ["has_quorum", "moved_tasks", "without"]


def has_quorum(plan: Plan, lost: Iterable[int]) -> bool:
    """Return whether the clients left once ``lost`` are dropped may go on (Note: quorum)."""
    lost = set(lost)
    left = [c for c in plan.clients if c not in lost]
    twice, everyone = 2 * len(left), len(plan.clients)
    return twice > everyone or (twice == everyone and min(plan.clients) in left)


def without(plan: Plan, lost: Iterable[int]) -> Plan:
    """Return ``plan`` without the ``lost`` clients (ValueError if no data owner is left)."""
    lost = set(lost)
    if not lost or not lost <= set(plan.clients):
        raise ValueError(f"cannot drop client(s) {sorted(lost)}: the run's clients are "
                         f"{', '.join(map(str, plan.clients))}")
    dropped = tuple(sorted(set(plan.dropped) | lost))
    survivors = [c for c in range(1, plan.num_clients + 1) if c not in dropped]
    owners = [o for o in plan.owners if o not in dropped]
    if not owners:
        raise ValueError(f"no data owner is left once client(s) {', '.join(map(str, dropped))} "
                         "are dropped")
    offload = {key: runner for key, runner in plan.runners.items()
               if runner != key[0] and key[0] not in dropped and runner not in dropped}
    lists = generate_lists(plan.num_clients, plan.num_partitions, owners, offload)
    server = plan.training.server_number
    training = dataclasses.replace(
        plan.training, stages_clients=tuple(tuple(tasks) for tasks in lists),
        server_number=server if server not in dropped else survivors[0],
        dataset_n_splits=plan.num_shards, pair_stages=None)
    try:
        derived = build_plan(training)
    except ConfigError as exc:  # cannot happen: the generator keeps every rule
        raise ValueError(f"the plan without client(s) {dropped} breaks a rule: {exc}") from None
    return dataclasses.replace(derived, dropped=dropped,
                               shard_owners=plan.shard_owners or plan.owners,
                               ancestors=(*plan.ancestors, plan.fingerprint))


def moved_tasks(before: Plan, after: Plan) -> dict[str, Any]:
    """Say what a drop changed, for the log and the results: who left, where tasks went."""
    moved = [{"owner": owner, "partition": partition, "from": runner,
              "to": after.runners[(owner, partition)]}
             for (owner, partition), runner in sorted(before.runners.items())
             if (owner, partition) in after.runners
             and after.runners[(owner, partition)] != runner]
    return {"dropped": [c for c in after.dropped if c not in before.dropped],
            "owners_left": [o for o in before.owners if o not in after.owners],
            "moved": moved, "aggregator": after.training.server_number,
            "plan": after.fingerprint}
