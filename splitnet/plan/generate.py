"""Write a valid ``SIMULATION_STAGES_CLIENTS`` so nobody types 5 x 36 tasks by hand.

Every owner runs its whole pipeline at home unless ``--offload OWNER:PARTITIONS=RUNNER`` moves
some middle partitions to another client; each list is ordered by stage, then owner.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

from splitnet.config import catalog
from splitnet.errors import ConfigError, Violation
from splitnet.plan.rules import check_placement
from splitnet.plan.task import Task, stage_of

__all__ = ["OFFLOAD_FORM", "generate", "generate_lists", "parse_offload"]

COMMAND_LINE = "the command line"

OFFLOAD_FORM = "'OWNER:PARTITIONS=RUNNER', e.g. '1:2-3=4' or '2:2,3=5'"
_OFFLOAD_RE = re.compile(r"([0-9]+):([0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*)=([0-9]+)")


def parse_offload(text: str) -> dict[tuple[int, int], int]:
    """Parse one ``--offload`` value into ``{(owner, partition): runner}``."""
    match = _OFFLOAD_RE.fullmatch(text.replace(" ", ""))
    if match is None:
        raise ValueError(f"--offload {text!r}: expected {OFFLOAD_FORM}")
    owner, parts, runner = int(match.group(1)), match.group(2), int(match.group(3))
    moved: dict[tuple[int, int], int] = {}
    for item in parts.split(","):
        low, _, high = item.partition("-")
        first, last = int(low), int(high or low)
        if first > last:
            raise ValueError(f"--offload {text!r}: range {item} runs backwards")
        for partition in range(first, last + 1):
            moved[(owner, partition)] = runner
    return moved


def generate_lists(
    num_clients: int,
    num_partitions: int,
    owners: Iterable[int] | None = None,
    offload: Mapping[tuple[int, int], int] | None = None,
) -> list[list[str]]:
    """Return one task list per client; ``offload`` maps (owner, partition) to its runner."""
    offload = offload or {}
    owner_list = sorted(set(owners)) if owners is not None else list(range(1, num_clients + 1))
    for (owner, partition), runner in sorted(offload.items()):
        if owner not in owner_list:
            raise ValueError(f"--offload names owner {owner}, which is not a data owner "
                             f"(owners: {', '.join(map(str, owner_list))})")
        if not 1 <= runner <= num_clients:
            raise ValueError(f"--offload sends owner {owner}'s partition {partition} to client "
                             f"{runner}; expected a client from 1 to {num_clients}")
        if not 1 <= partition <= num_partitions:
            raise ValueError(f"--offload names partition {partition} of owner {owner}; "
                             f"expected 1..{num_partitions}")
    per_client: list[list[Task]] = [[] for _ in range(num_clients)]
    for owner in owner_list:
        for partition in range(1, num_partitions + 1):
            runner = offload.get((owner, partition), owner)
            for forward in (True, False):
                task = Task(owner, stage_of(partition, num_partitions, forward=forward))
                per_client[runner - 1].append(task)
    return [[str(t) for t in sorted(tasks, key=lambda t: (t.stage, t.owner))]
            for tasks in per_client]


def generate(
    clients: int | None,
    partitions: int | None,
    model: str | None,
    bert_model: str = "tiny",
    owners: str | None = None,
    offload: Sequence[str] = (),
    fmt: str = "text",
) -> str:
    """Return what ``splitnet plan --generate`` prints: the lists as JSON or as an env line.

    Every problem with the request is raised at once as a ConfigError; the generated lists are
    checked against every placement rule before they are returned.
    """
    usage: list[Violation] = []
    if clients is None or clients < 1:
        usage.append(Violation("usage", "--generate needs --clients N (a positive integer)"))
    if (partitions is None) == (model is None):
        usage.append(Violation("usage", "--generate needs exactly one of --partitions P or "
                                        "--model NAME"))
    elif partitions is not None and partitions < 1:
        usage.append(Violation("usage", "--partitions must be a positive integer"))
    owner_list = None
    if owners:
        try:
            owner_list = [int(x) for x in owners.split(",") if x.strip()]
        except ValueError:
            usage.append(Violation("usage", f"--owners {owners!r}: expected client numbers "
                                            "separated by commas, e.g. 1,2,3"))
    moved: dict[tuple[int, int], int] = {}
    for spec in offload:
        try:
            moved.update(parse_offload(spec))
        except ValueError as exc:
            usage.append(Violation("usage", str(exc)))
    if usage or clients is None:
        raise ConfigError(usage, COMMAND_LINE)
    p = partitions or catalog.num_partitions(model or "CNN", bert_model)
    if owner_list is not None and any(not 1 <= o <= clients for o in owner_list):
        raise ConfigError(Violation("usage", f"--owners {owners}: expected clients 1.."
                                             f"{clients}"), COMMAND_LINE)
    try:
        lists = generate_lists(clients, p, owner_list, moved)
    except ValueError as exc:
        raise ConfigError(Violation("usage", str(exc)), COMMAND_LINE) from None
    _, violations = check_placement(lists, clients, p,
                                    f"--model {model}" if model else f"--partitions {p}")
    if violations:
        raise ConfigError(violations, "the generated plan")
    if fmt == "json":
        return json.dumps(lists)
    return "SIMULATION_STAGES_CLIENTS=" + json.dumps(lists, separators=(",", ":"))
