"""Run this process as one client of a cluster (what ``splitnet run`` does)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from pathlib import Path
from typing import Any

from splitnet.config.network import peer_addresses, resolve_token
from splitnet.config.settings import Settings
from splitnet.errors import ConfigError, Violation
from splitnet.learning.sizes import wire_limits
from splitnet.learning.slowdown import slowdown_factor
from splitnet.learning.threads import apply_client_threads
from splitnet.node.node import Node
from splitnet.node.rejoin import run_rejoining
from splitnet.plan.plan import Plan
from splitnet.transport.bulk import uses_swarm
from splitnet.transport.network import GrpcNetwork, NetworkOptions
from splitnet.transport.tls import Identity, TlsFiles, load_identity, tls_wanted

__all__ = ["network_options", "run_client"]

log = logging.getLogger("splitnet.node")


def network_options(settings: Settings, plan: Plan) -> NetworkOptions:
    """Return how client ``CLIENT_NUMBER`` reaches its peers, from its settings.

    What a peer may send is bounded by what the plan allows (Note: wire limits in
    :mod:`splitnet.learning.sizes`): the largest tensor and the largest bulk object.
    """
    network, transport = settings.network, settings.transport
    if network.client_number is None:
        raise ConfigError(Violation("setting", "CLIENT_NUMBER is not set: each client needs its "
                                               f"number, 1..{settings.training.num_clients}"),
                          settings.source)
    limits = wire_limits(plan)
    identity = _identity(settings, network.client_number)
    return NetworkOptions(
        me=network.client_number, addresses=peer_addresses(settings),
        token=_token(settings, identity is not None), listen_host=network.listen_host,
        activation_transport=transport.activation_transport,
        bulk_transport=_bulk(settings, identity),
        torrent_min_bytes=int(transport.bulk_torrent_min_mib * 1024 * 1024),
        torrent_port=transport.torrent_port, torrent_timeout=transport.torrent_timeout,
        torrent_utp=transport.torrent_utp, tensor_port=network.tensor_port,
        peer_timeout=network.peer_timeout, max_tensor_bytes=limits.tensor_bytes,
        max_bulk_bytes=limits.bulk_bytes, identity=identity,
        port_key=f"the port of PEERS' entry {network.client_number}" if network.peers
        else "GRPC_PORT")


def _identity(settings: Settings, me: int) -> Identity | None:
    """Return this client's checked TLS identity, or None, warning, with TLS=off.

    ``TLS=auto`` (the default) is on when ``TLS_DIR`` holds the cluster CA, and refused when
    it does not: running without TLS must be asked for (``TLS=off``).
    """
    network = settings.network
    wanted = tls_wanted(network.tls, Path(network.tls_dir))
    if wanted is None:
        raise ConfigError(Violation("setting", f"TLS=auto: TLS_DIR={network.tls_dir} holds no "
                                               "ca.crt; make the cluster's certificates with "
                                               "splitnet certs --clients N, or set TLS=off to "
                                               "run on the shared token alone, unencrypted"),
                          settings.source)
    if not wanted:
        log.warning("client %d: TLS=off: peers are known by the shared token alone, which "
                    "travels in clear, and nothing on the wire is encrypted; make certificates "
                    "(splitnet certs) and set TLS=on", me)
        return None
    try:
        return load_identity(TlsFiles.in_folder(Path(network.tls_dir), me), me)
    except ValueError as exc:
        raise ConfigError(Violation("setting", f"TLS={network.tls} (TLS_DIR={network.tls_dir}):"
                                               f" {exc}"), settings.source) from None


def _bulk(settings: Settings, identity: Identity | None) -> str:
    """Return BULK_TRANSPORT, once TLS=on certificates are known to suit SSL torrents."""
    transport = settings.transport
    if (identity is not None and not identity.covers_torrents
            and uses_swarm(transport.bulk_transport, transport.activation_transport)):
        raise ConfigError(Violation(
            "setting", f"TLS=on with BULK_TRANSPORT={transport.bulk_transport} / "
                       f"ACTIVATION_TRANSPORT={transport.activation_transport}: certificate "
                       f"{identity.files.cert} has no DNS name '*', which libtorrent's SSL "
                       "torrents ask for; make new certificates with splitnet certs, or set "
                       "BULK_TRANSPORT=grpc"), settings.source)
    return transport.bulk_transport


def _token(settings: Settings, tls: bool) -> str:
    """Return the cluster token; with TLS none is needed (certificates identify clients)."""
    network = settings.network
    if tls and not network.token and not network.token_file:
        return ""
    return resolve_token(settings)


def run_client(plan: Plan, settings: Settings) -> dict[str, Any]:
    """Run one client to the end over gRPC; return its summary (the run's, on the aggregator).

    SIGTERM stops the client like a failure: its peers are told and its results written.
    """
    options = network_options(settings, plan)  # a missing CLIENT_NUMBER fails before any node
    apply_client_threads(settings.output)
    slowdown_factor()  # test-only SPLITNET_TEST_SLOWDOWN: a bad value stops the client here

    def started(node: Node) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, node.stop,
                                                      "stopped by SIGTERM")

    def make_node(current_plan: Plan, current: Settings) -> Node:
        # an incarnation changes the join deadline, the run id and, after a drop, the plan
        left = frozenset(current_plan.dropped)
        return Node(current_plan, current, GrpcNetwork(dataclasses.replace(options, left=left)))

    async def main() -> dict[str, Any]:  # Note: restart after a lost peer (node/rejoin.py)
        return await run_rejoining(plan, settings, make_node, started)

    return asyncio.run(main())
