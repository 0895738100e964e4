"""``splitnet status``: the cluster's clients as Docker sees them (Compose containers, Swarm tasks).

Uses the Docker SDK for Python; the current round comes from asking a running client
(``splitnet health`` inside its container).

Note: whose containers. An engine runs other projects' containers too, some with a service
called ``client``. A splitnet client is recognised by its environment, as the client itself
reads it: ``CLIENT_NUMBER`` and the cluster credential (``SPLITNET_TOKEN`` or
``SPLITNET_TOKEN_FILE``), which no client starts without and the generated compose files always
set. ``CLIENT_NUMBER`` is shown as it is written; one that is not a number sorts last.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from splitnet.errors import RuntimeFailure

__all__ = ["cluster_status", "env_of", "format_status", "is_splitnet_client", "row_order"]

_ROUND = re.compile(r"round (\d+)")
CREDENTIAL_KEYS = ("SPLITNET_TOKEN", "SPLITNET_TOKEN_FILE")


def env_of(items: Iterable[str] | None) -> dict[str, str]:
    """Return a container's ``KEY=value`` environment list as a mapping."""
    env = {}
    for item in items or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def is_splitnet_client(env: Mapping[str, str]) -> bool:
    """Return whether an environment is a splitnet client's (Note: whose containers)."""
    return "CLIENT_NUMBER" in env and any(key in env for key in CREDENTIAL_KEYS)


def row_order(row: Mapping[str, Any]) -> tuple[str, int, str]:
    """Sort key: where, then the client number (one that is not a number last), then name."""
    number = str(row["client"]).strip()
    return (row["where"], int(number) if number.isascii() and number.isdigit() else 1 << 30,
            str(row["name"]))


def _compose_rows(client: Any, project: str | None) -> list[dict[str, Any]]:
    label = "com.docker.compose.service"
    filters = {"label": [label] + ([f"com.docker.compose.project={project}"] if project else [])}
    rows = []
    for container in client.containers.list(all=True, filters=filters):
        env = env_of(container.attrs.get("Config", {}).get("Env"))
        if not is_splitnet_client(env):
            continue
        state = container.attrs.get("State", {})
        round_ = ""
        if container.status == "running":
            code, output = container.exec_run(["splitnet", "health"])
            match = _ROUND.search(output.decode(errors="replace")) if code == 0 else None
            round_ = match.group(1) if match else ""
        rows.append({
            "client": env["CLIENT_NUMBER"],
            "where": f"compose {container.labels.get('com.docker.compose.project', '')}",
            "name": container.name, "state": container.status,
            "health": state.get("Health", {}).get("Status", "-"), "node": "local",
            "round": round_,
        })
    return rows


def _swarm_rows(client: Any) -> list[dict[str, Any]]:
    import docker

    try:
        services = client.services.list()
    except docker.errors.APIError:
        return []  # not a swarm manager
    nodes = {n.id: n.attrs.get("Description", {}).get("Hostname", n.id[:12])
             for n in client.nodes.list()}
    rows = []
    for service in services:
        spec = service.attrs.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {})
        env = env_of(spec.get("Env"))
        if not is_splitnet_client(env):
            continue
        for task in service.tasks():
            rows.append({
                "client": env["CLIENT_NUMBER"], "where": "swarm", "name": service.name,
                "state": task["Status"]["State"], "health": "-",
                "node": nodes.get(task.get("NodeID", ""), "-"), "round": "",
            })
    return rows


def cluster_status(project: str | None = None) -> list[dict[str, Any]]:
    """Return one row per client container or Swarm task."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise RuntimeFailure(f"cannot reach the Docker engine ({exc}); is dockerd running and "
                             "DOCKER_HOST right?") from None
    try:
        rows = _compose_rows(client, project) + _swarm_rows(client)
    finally:
        client.close()
    return sorted(rows, key=row_order)


def format_status(rows: list[dict[str, Any]]) -> str:
    """Return the rows as an aligned table."""
    if not rows:
        return "no splitnet clients found (no Compose containers or Swarm services)"
    columns = ["client", "where", "name", "state", "health", "node", "round"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
