"""``splitnet status``: the cluster's clients as Docker sees them (Compose containers, Swarm tasks).

Uses the Docker SDK for Python; the current round comes from asking a running client
(``splitnet health`` inside its container).
"""

from __future__ import annotations

import re
from typing import Any

from splitnet.errors import RuntimeFailure

__all__ = ["cluster_status", "format_status"]

_ROUND = re.compile(r"round (\d+)")


def _env(attrs: dict[str, Any], key: str) -> str:
    for item in attrs.get("Config", {}).get("Env") or []:
        name, _, value = item.partition("=")
        if name == key:
            return value
    return ""


def _compose_rows(client: Any, project: str | None) -> list[dict[str, Any]]:
    label = "com.docker.compose.service"
    filters = {"label": [label] + ([f"com.docker.compose.project={project}"] if project else [])}
    rows = []
    for container in client.containers.list(all=True, filters=filters):
        if not container.labels.get(label, "").startswith("client"):
            continue
        state = container.attrs.get("State", {})
        round_ = ""
        if container.status == "running":
            code, output = container.exec_run(["splitnet", "health"])
            match = _ROUND.search(output.decode(errors="replace")) if code == 0 else None
            round_ = match.group(1) if match else ""
        rows.append({
            "client": _env(container.attrs, "CLIENT_NUMBER"),
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
        env = service.attrs["Spec"]["TaskTemplate"].get("ContainerSpec", {}).get("Env") or []
        number = next((e.split("=", 1)[1] for e in env if e.startswith("CLIENT_NUMBER=")), "")
        if not number:
            continue
        for task in service.tasks():
            rows.append({
                "client": number, "where": "swarm", "name": service.name,
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
    return sorted(rows, key=lambda r: (r["where"], int(r["client"] or 0)))


def format_status(rows: list[dict[str, Any]]) -> str:
    """Return the rows as an aligned table."""
    if not rows:
        return "no splitnet clients found (no Compose containers or Swarm services)"
    columns = ["client", "where", "name", "state", "health", "node", "round"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
