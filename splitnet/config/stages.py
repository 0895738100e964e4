"""Where the task lists come from: ``SIMULATION_STAGES_CLIENTS``, its alias, or ``CONFIG_FILE``.

The lists are read as data (JSON or a Python literal, never evaluated) and their shape checked:
one list of task strings per client. What the tasks mean is the plan's business.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from splitnet.config.envfile import MAX_ENV_FILE_BYTES
from splitnet.config.fields import STAGES_ALIAS, STAGES_KEY
from splitnet.config.files import read_text_file
from splitnet.config.parsing import parse_literal, show
from splitnet.errors import Violation

__all__ = ["read_stages"]


def read_stages(
    values: Mapping[str, str],
    config_file: str | None,
    base_dir: Path,
    violations: list[Violation],
) -> tuple[tuple[str, ...], ...]:
    """Find the task lists (the key, its alias, or CONFIG_FILE) and check their shape."""
    given = [key for key in (STAGES_KEY, STAGES_ALIAS) if (values.get(key) or "").strip()]
    if config_file:
        given.append("CONFIG_FILE")
    if len(given) > 1:
        violations.append(Violation("setting", f"{' and '.join(given)} are all set; "
                                    "set only one source of the task lists"))
        return ()
    if not given:
        if any(v.rule == "env-file" for v in violations):
            return ()  # the env file could not be read; saying the key is missing adds nothing
        violations.append(Violation("setting", f"{STAGES_KEY} is not set; expected one list of "
                                    "tasks per client, e.g. [['1_1', '1_2'], ['2_1', '2_2']] "
                                    "(or name a file holding it in CONFIG_FILE)"))
        return ()
    if given[0] == "CONFIG_FILE":
        assert config_file is not None
        label, raw = _read_config_file(base_dir / config_file, violations)
        if raw is None:
            return ()
    else:
        label, raw = given[0], values[given[0]]
    try:
        data = parse_literal(raw)
    except ValueError as exc:
        violations.append(Violation("setting", f"{label} {exc}"))
        return ()
    if isinstance(data, dict) and STAGES_KEY in data:
        data = data[STAGES_KEY]
    return _check_shape(label, data, violations)


def _read_config_file(path: Path, violations: list[Violation]) -> tuple[str, str | None]:
    """Read CONFIG_FILE: a bare literal, a JSON object, or ``SIMULATION_STAGES_CLIENTS = [...]``."""
    label = f"CONFIG_FILE {path}"
    try:
        content = read_text_file(path, MAX_ENV_FILE_BYTES)
    except ValueError as exc:
        violations.append(Violation("setting", f"{label}: {exc}"))
        return label, None
    assigned = _assigned_literal(content)
    if assigned is not None:
        return label, assigned
    for line_no, line in enumerate(content.splitlines(), 1):
        key, sep, rest = line.partition("=")
        if sep and key.strip() in (STAGES_KEY, STAGES_ALIAS):
            # An old-style config assigns the list; keep everything after '=' as the literal.
            tail = "\n".join([rest, *content.splitlines()[line_no:]])
            return label, tail
    return label, content


def _assigned_literal(content: str) -> str | None:
    """Return the source of ``SIMULATION_STAGES_CLIENTS = <this>`` in a Python-style file.

    Note: old config files. The system splitnet replaces kept its lists in a Python module that
    may assign other names too (``forward_backward_pair_stages = {...}``); only the lists'
    assignment is taken, as text, and read as data like any other value. Nothing is executed.
    """
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id in (STAGES_KEY, STAGES_ALIAS)
                for target in node.targets):
            return ast.get_source_segment(content, node.value)
    return None


def _check_shape(label: str, data: Any, violations: list[Violation]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(data, (list, tuple)):
        violations.append(Violation("setting", f"{label} is a {type(data).__name__}; expected a "
                                    "list with one list of tasks per client"))
        return ()
    lists: list[tuple[str, ...]] = []
    ok = True
    for client, entry in enumerate(data, 1):
        if not isinstance(entry, (list, tuple)):
            violations.append(Violation("setting", f"{label}: client {client}'s entry is "
                                        f"{show(repr(entry))}; expected a list of tasks"))
            ok = False
            continue
        for position, item in enumerate(entry, 1):
            if not isinstance(item, str):
                violations.append(Violation(
                    "task-syntax", f"item {position} of client {client}'s list is "
                    f"{show(repr(item))} ({type(item).__name__}); expected a string "
                    "'{owner}_{stage}', e.g. '1_3'"))
                ok = False
        lists.append(tuple(item for item in entry if isinstance(item, str)))
    return tuple(lists) if ok else ()
