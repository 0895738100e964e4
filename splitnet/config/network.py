"""Where peers are and how they prove they belong: addresses and the cluster token."""

from __future__ import annotations

import re
from pathlib import Path

from splitnet.config.files import read_text_file
from splitnet.config.settings import Settings
from splitnet.errors import ConfigError, Violation

__all__ = ["peer_addresses", "resolve_token"]

MAX_TOKEN_FILE_BYTES = 64 * 1024
_ADDRESS_RE = re.compile(r"[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5}")


def peer_addresses(settings: Settings) -> list[str]:
    """Return client k's ``host:port`` at index k-1 (``PEERS``, else ``client{k}:GRPC_PORT``)."""
    n, network = settings.training.num_clients, settings.network
    if not network.peers:
        return [f"client{k}:{network.grpc_port}" for k in range(1, n + 1)]
    addresses = [a.strip() for a in network.peers.split(",") if a.strip()]
    problems = []
    if len(addresses) != n:
        problems.append(Violation("setting", f"PEERS lists {len(addresses)} address(es) but "
                                             f"NUM_CLIENTS={n}: expected one host:port per client"))
    for address in addresses:
        port = address.rsplit(":", 1)[-1]
        if not _ADDRESS_RE.fullmatch(address) or not 1 <= int(port or 0) <= 65535:
            problems.append(Violation("setting", f"PEERS entry {address!r}: expected host:port, "
                                                 "e.g. client1:50051 or 127.0.0.1:7001"))
    if problems:
        raise ConfigError(problems, settings.source)
    return addresses


def resolve_token(settings: Settings) -> str:
    """Return the cluster credential from ``SPLITNET_TOKEN`` or ``SPLITNET_TOKEN_FILE``."""
    network = settings.network
    if network.token:
        return network.token
    if network.token_file:
        try:
            token = read_text_file(Path(network.token_file), MAX_TOKEN_FILE_BYTES).strip()
        except ValueError as exc:
            raise ConfigError(Violation("setting", f"SPLITNET_TOKEN_FILE={network.token_file}: "
                                                   f"{exc}")) from None
        if token:
            return token
        raise ConfigError(Violation("setting", f"SPLITNET_TOKEN_FILE={network.token_file} is "
                                               "empty"))
    raise ConfigError(Violation("setting", "no cluster token: set SPLITNET_TOKEN (the same "
                                           "secret on every client) or SPLITNET_TOKEN_FILE"))
