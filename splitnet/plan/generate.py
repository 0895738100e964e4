"""Write a valid ``SIMULATION_STAGES_CLIENTS`` so nobody types 5 x 36 tasks by hand.

Every owner runs its whole pipeline at home unless ``--offload OWNER:PARTITIONS=RUNNER`` moves
some middle partitions to another client; each list is ordered by stage, then owner.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

from splitnet.config import catalog
from splitnet.config.fields import MAX_CLIENTS
from splitnet.config.parsing import plain_int
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


def _request_problems(clients: int | None, partitions: int | None, model: str | None,
                      bert_model: str | None) -> list[str]:
    """Return what is wrong with ``--clients``, ``--partitions``, ``--model``, ``--bert-model``."""
    problems = []
    if clients is None or not 1 <= clients <= MAX_CLIENTS:
        problems.append(f"--generate needs --clients N, from 1 to {MAX_CLIENTS} (NUM_CLIENTS's "
                        "limit)" + ("" if clients is None else f"; got {clients}"))
    if (partitions is None) == (model is None):
        problems.append("--generate needs exactly one of --partitions P or --model NAME")
    elif partitions is not None and partitions < 1:
        problems.append("--partitions must be a positive integer")
    if bert_model is not None and model != "BERT":
        problems.append(f"--bert-model {bert_model} with "
                        + (f"--model {model}" if model else "no --model")
                        + ": it sizes --model BERT only")
    return problems


def _parse_owners(text: str) -> list[int]:
    """Parse ``--owners``: client numbers separated by commas, each once."""
    rule = f"--owners {text!r}: expected client numbers separated by commas, each once, e.g. 1,2,3"
    try:
        owners = [plain_int(item) for item in text.split(",")]
    except ValueError:
        raise ValueError(rule) from None
    if len(set(owners)) != len(owners):
        twice = sorted({o for o in owners if owners.count(o) > 1})
        raise ValueError(f"{rule} (names {', '.join(map(str, twice))} more than once)")
    return owners


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
    bert_model: str | None = None,
    owners: str | None = None,
    offload: Sequence[str] = (),
    fmt: str = "text",
) -> str:
    """Return what ``splitnet plan --generate`` prints: the lists as JSON or as an env line.

    Every problem with the request is raised at once as a ConfigError; the generated lists are
    checked against every placement rule before they are returned.
    """
    usage = [Violation("usage", problem) for problem in _request_problems(
        clients, partitions, model, bert_model)]
    owner_list = None
    if owners is not None:
        try:
            owner_list = _parse_owners(owners)
        except ValueError as exc:
            usage.append(Violation("usage", str(exc)))
    moved: dict[tuple[int, int], int] = {}
    for spec in offload:
        try:
            more = parse_offload(spec)
        except ValueError as exc:
            usage.append(Violation("usage", str(exc)))
            continue
        usage += [Violation("usage", f"--offload {spec!r} names owner {o}'s partition {part} "
                                     f"again (to client {moved[o, part]} before): each "
                                     "partition may be moved once")
                  for (o, part) in sorted(more.keys() & moved.keys())]
        moved.update(more)
    if usage or clients is None:
        raise ConfigError(usage, COMMAND_LINE)
    p = partitions or catalog.num_partitions(model or "CNN", bert_model or "tiny")
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
