"""What a client listens on, checked before it starts: ports that clash, peers named twice.

Note: listeners opened. A client opens at most four listeners: gRPC (its own ``PEERS`` entry's
port, else ``GRPC_PORT``), the direct tensor channel (``TENSOR_PORT``, only with
``ACTIVATION_TRANSPORT=direct``), the libtorrent session (``TORRENT_PORT``, only when a swarm
runs: ``BULK_TRANSPORT`` auto or torrent, or ``ACTIVATION_TRANSPORT=torrent``, as
``splitnet.transport.bulk.uses_swarm`` decides) and ``/metrics`` (``METRICS_PORT``, 0: off).
Two of those that are opened may not share a port (0 excepted: any free port); a listener that
is never opened is not compared, so an unused ``TENSOR_PORT`` equal to ``GRPC_PORT`` is no error.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from splitnet.config.settings import NetworkSettings, OutputSettings, TransportSettings
from splitnet.errors import Violation

__all__ = ["listener_violations", "opened_listeners", "peer_entries"]


def peer_entries(peers: str) -> list[tuple[str, int]]:
    """Return ``PEERS``' (host, port) per client, the host in one spelling (IPs normalised).

    ``peers`` must have passed :func:`splitnet.config.parsing.host_port_list`.
    """
    entries = []
    for entry in peers.split(","):
        name, _, port = entry.strip().rpartition(":")
        bare = name.strip("[]")
        try:
            name = str(ipaddress.ip_address(bare))
        except ValueError:
            name = bare.lower().rstrip(".")
        entries.append((name, int(port)))
    return entries


def opened_listeners(network: NetworkSettings, transport: TransportSettings,
                     output: OutputSettings, client: int) -> dict[str, int]:
    """Return the listeners client ``client`` opens, by the key that sets each port.

    Note: listeners opened. The gRPC listener's key is ``PEERS`` when that is set (the port of
    the client's own entry).
    """
    opened: dict[str, int] = {}
    if network.peers:
        opened["PEERS"] = peer_entries(network.peers)[client - 1][1]
    else:
        opened["GRPC_PORT"] = network.grpc_port
    if transport.activation_transport == "direct":
        opened["TENSOR_PORT"] = network.tensor_port
    if transport.bulk_transport in ("auto", "torrent") or (
            transport.activation_transport == "torrent"):
        opened["TORRENT_PORT"] = transport.torrent_port
    if output.metrics_port:
        opened["METRICS_PORT"] = output.metrics_port
    return opened


def listener_violations(network: NetworkSettings, transport: TransportSettings,
                        output: OutputSettings, num_clients: int,
                        bad_keys: set[str]) -> list[Violation]:
    """Return clashing listener ports, repeated ``PEERS`` addresses, METRICS_TLS=on with TLS=off.

    The last only while metrics are served; keys in ``bad_keys`` (reported already) are not
    compared (Note: listeners opened).
    """
    violations = _metrics_tls(network, output)
    if network.peers and ("PEERS" in bad_keys
                          or len(peer_entries(network.peers)) != num_clients):
        return violations  # PEERS is reported already
    if network.peers:
        violations += _repeated_peers(network.peers)
    if network.client_number:
        clients = [network.client_number] if network.client_number <= num_clients else []
    else:  # validate on a host for every client: with PEERS, each gRPC port is its own
        clients = list(range(1, num_clients + 1)) if network.peers else [1]
    clashes: dict[tuple[int, tuple[str, ...]], list[int]] = defaultdict(list)
    for client in clients:
        by_port: dict[int, list[str]] = defaultdict(list)
        for key, port in opened_listeners(network, transport, output, client).items():
            if port and key not in bad_keys:
                by_port[port].append(key)
        for port, on_port in by_port.items():
            if len(on_port) > 1:
                clashes[(port, tuple(on_port))].append(client)
    for (port, keys), where in clashes.items():
        sharing = ["the PEERS entry" if key == "PEERS" else key for key in keys]
        whose = ("client " if len(where) == 1 else "clients ") + ", ".join(map(str, where))
        if not network.peers and not network.client_number:
            whose = "every client"
        violations.append(Violation(
            "setting", f"{', '.join(sharing[:-1])} and {sharing[-1]} share port {port}: {whose} "
                       "would open these listeners on one port; expected a different port for "
                       "each (0: any free port)"))
    return violations


def _repeated_peers(peers: str) -> list[Violation]:
    clients: dict[tuple[str, int], list[int]] = defaultdict(list)
    for client, entry in enumerate(peer_entries(peers), 1):
        clients[entry].append(client)
    return [Violation("setting", f"PEERS names {_address(host, port)} for clients "
                                 f"{', '.join(map(str, where))}: expected one address per "
                                 "client (each listens on its own)")
            for (host, port), where in clients.items() if len(where) > 1]


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _metrics_tls(network: NetworkSettings, output: OutputSettings) -> list[Violation]:
    if output.metrics_tls == "on" and network.tls == "off" and output.metrics_port:
        return [Violation("setting", "METRICS_TLS=on with TLS=off: /metrics over HTTPS needs "
                                     "this client's certificate, which TLS=off goes without; "
                                     "set TLS=on with certificates (splitnet certs), "
                                     "METRICS_TLS=off, or METRICS_PORT=0")]
    return []
