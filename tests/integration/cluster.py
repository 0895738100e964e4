"""Run a whole cluster in one process: real gRPC servers on loopback, one Node per client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import torch

from splitnet.config import Settings, load
from splitnet.node import Node
from splitnet.node.client import network_options
from splitnet.plan.plan import Plan, build_plan
from splitnet.transport.network import GrpcNetwork
from splitnet.transport.ports import free_ports

TOKEN = "t0k3n-0123456789abcdef"  # the cluster token of make_nodes (at least MIN_TOKEN_CHARS)


def make_settings(values: dict[str, str], client: int) -> Settings:
    return load(values={"TORRENT_PORT": "0", "METRICS_PORT": "0", "TLS": "off", **values,
                        "CLIENT_NUMBER": str(client)})


def make_plan(values: dict[str, str], client: int) -> Plan:
    return build_plan(make_settings(values, client).training)


def make_nodes(values: dict[str, str], results: Path, token: str = TOKEN,
               per_client: dict[int, dict[str, str]] | None = None) -> list[Node]:
    """Return one Node per client on loopback (call it inside the event loop that runs them)."""
    n = make_plan(values, 1).num_clients
    peers = ",".join(f"127.0.0.1:{p}" for p in free_ports(n))
    nodes = []
    for k in range(1, n + 1):
        settings = make_settings({**values, **(per_client or {}).get(k, {}), "PEERS": peers,
                                  "SPLITNET_TOKEN": token, "LISTEN_HOST": "127.0.0.1",
                                  "RESULTS_DIR": str(results),
                                  "CHECKPOINT_DIR": str(results / "checkpoints")}, k)
        plan = build_plan(settings.training)
        nodes.append(Node(plan, settings, GrpcNetwork(network_options(settings, plan))))
    return nodes


def run_cluster(values: dict[str, str], results: Path, **kw: Any) -> list[Any]:
    torch.set_num_threads(1)  # deterministic kernels: placement tests compare to 1e-5

    async def main() -> list[Any]:
        nodes = make_nodes(values, results, **kw)
        return await asyncio.gather(*(node.run() for node in nodes), return_exceptions=True)

    return asyncio.run(main())
