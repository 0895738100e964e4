"""Run a whole cluster in one process: real gRPC servers on loopback, one Node per client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import torch

from splitnet.config.settings import settings_from_values
from splitnet.node.node import Node, NodeOptions
from splitnet.ops.local import free_ports
from splitnet.plan.plan import Plan, build_plan


def make_plan(values: dict[str, str], client: int) -> Plan:
    return build_plan(settings_from_values({"TORRENT_PORT": "0", "METRICS_PORT": "0", **values, "CLIENT_NUMBER": str(client)}))


def make_nodes(values: dict[str, str], results: Path, token: str = "t0k3n",
               per_client: dict[int, dict[str, str]] | None = None) -> list[Node]:
    first = make_plan(values, 1)
    n = first.num_clients
    addresses = [f"127.0.0.1:{p}" for p in free_ports(n)]
    nodes = []
    for k in range(1, n + 1):
        plan = make_plan({**values, **(per_client or {}).get(k, {})}, k)
        nodes.append(Node(plan, NodeOptions(k, addresses, token, "127.0.0.1", results)))
    return nodes


def run_cluster(values: dict[str, str], results: Path, **kw: Any) -> list[Any]:
    torch.set_num_threads(1)  # deterministic kernels: placement tests compare to 1e-5
    nodes = make_nodes(values, results, **kw)

    async def main() -> list[Any]:
        return await asyncio.gather(*(node.run() for node in nodes), return_exceptions=True)

    return asyncio.run(main())
