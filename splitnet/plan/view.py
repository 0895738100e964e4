"""How ``splitnet plan`` shows a plan: a placement table and schedules, as text or JSON."""

from __future__ import annotations

import json
from typing import Any

from splitnet.plan.plan import Plan
from splitnet.plan.schedule import predecessor, strict_order_wait_chain
from splitnet.plan.task import Task

__all__ = ["plan_as_json", "plan_as_text", "render"]


def render(plan: Plan, fmt: str = "text") -> str:
    """Return what ``splitnet plan`` prints: :func:`plan_as_text`, or the JSON (``fmt="json"``)."""
    if fmt == "json":
        return json.dumps(plan_as_json(plan), indent=2)
    return plan_as_text(plan)


def plan_as_json(plan: Plan) -> dict[str, Any]:
    """Return the plan as JSON data: facts, placement, schedules and the dry run."""
    run = plan.dry_run()
    return {
        "fingerprint": plan.fingerprint,
        "facts": plan.facts(),
        "owners": list(plan.owners),
        "helpers": list(plan.helpers),
        "placement": {
            str(owner): {str(p): plan.runner(owner, p) for p in range(1, plan.num_partitions + 1)}
            for owner in plan.owners
        },
        "offloads": [{"owner": o, "partition": p, "runner": r} for o, p, r in plan.offloads()],
        "schedules": {str(c): [str(t) for t in plan.tasks_of(c)]
                      for c in range(1, plan.num_clients + 1)},
        "dry_run": {"completes": run.completes, "steps": len(run.steps)},
    }


def plan_as_text(plan: Plan) -> str:
    """Return the placement table (owner x partition → runner) and every client's schedule."""
    p = plan.num_partitions
    width = max(len(str(plan.num_clients)), len(str(p)), 2)
    header = "owner \\ partition".ljust(18) + " ".join(str(q).rjust(width) for q in range(1, p + 1))
    rows = [header]
    for owner in plan.owners:
        cells = []
        for q in range(1, p + 1):
            runner = plan.runner(owner, q)
            cells.append((str(runner) if runner == owner else f"{runner}*").rjust(width))
        rows.append(f"owner {owner}".ljust(18) + " ".join(cells))
    lines = [plan.summary(), "", "Placement (runner of each partition; * = offloaded):", *rows,
             "", "Schedules (order of preference):"]
    for client in range(1, plan.num_clients + 1):
        role = "owner" if client in plan.owners else "helper"
        tasks = " ".join(str(t) for t in plan.tasks_of(client)) or "(nothing)"
        lines.append(f"  client {client} ({role}): {tasks}")
    run = plan.dry_run()
    lines += ["", f"Dry run: one batch of every owner completes in {len(run.steps)} steps "
              "(each client runs its earliest ready task; see README, 'No configuration hangs')."]
    chain = strict_order_wait_chain(plan.client_tasks)
    if chain:
        lines.append(f"Note: run strictly in list order this would wait on itself: "
                     f"{_describe_chain(chain)}. splitnet runs whichever task is ready, so it "
                     "completes.")
    return "\n".join(lines)


def _describe_chain(chain: list[tuple[Task, int]]) -> str:
    """Say how each blocked task waits on the next, back to the first."""
    parts = []
    for index, (task, client) in enumerate(chain):
        after, after_client = chain[(index + 1) % len(chain)]
        needed = predecessor(task)
        parts.append(f"{task} on client {client} needs {needed}, which client {after_client} "
                     f"runs only after {after}")
    return "; ".join(parts)
