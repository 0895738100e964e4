"""Where peers are and how they prove they belong: addresses and the cluster token."""

from __future__ import annotations

import logging
from pathlib import Path

from splitnet.config.files import read_text_file
from splitnet.config.parsing import host_port_list, show
from splitnet.config.settings import Settings
from splitnet.errors import ConfigError, Violation

__all__ = [
    "MIN_TOKEN_CHARS",
    "PLACEHOLDER_TOKEN",
    "peer_addresses",
    "resolve_token",
    "token_violation",
    "token_warnings",
]

_log = logging.getLogger(__name__)

MAX_TOKEN_FILE_BYTES = 64 * 1024
MIN_TOKEN_CHARS = 16
PLACEHOLDER_TOKEN = "change-me"
"""The token the generated compose file falls back to when ``SPLITNET_TOKEN`` is not set."""


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
    try:
        host_port_list(network.peers)
    except ValueError as exc:
        problems.append(Violation("setting", f"PEERS={show(network.peers)}: {exc}"))
    if problems:
        raise ConfigError(problems, settings.source)
    return addresses


def token_warnings(token: str, key: str) -> list[str]:
    """Return a warning for the compose placeholder token (Note: token strength)."""
    if token == PLACEHOLDER_TOKEN:
        return [f"{key} is the placeholder {PLACEHOLDER_TOKEN!r} the compose file falls back "
                "to: anyone who knows it can join or stop the cluster; set SPLITNET_TOKEN to a "
                "secret, e.g. `openssl rand -hex 16`"]
    return []


def token_violation(token: str, key: str) -> Violation | None:
    """Return the violation of a token shorter than ``MIN_TOKEN_CHARS``, naming ``key``.

    Note: token strength. A short token is an error; the compose placeholder (shorter too)
    is only warned about, so that ``docker compose up`` without a secret still starts, loudly,
    on every client. The token itself is never shown.
    """
    if token == PLACEHOLDER_TOKEN or len(token) >= MIN_TOKEN_CHARS:
        return None
    return Violation("setting", f"{key} is {len(token)} characters: the cluster token must be "
                                f"at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 16`)")


def _checked(token: str, key: str) -> str:
    violation = token_violation(token, key)
    if violation is not None:
        raise ConfigError(violation)
    return token


def resolve_token(settings: Settings) -> str:
    """Return the cluster credential from ``SPLITNET_TOKEN`` or ``SPLITNET_TOKEN_FILE``.

    ConfigError when neither is set, the file cannot be read, or the token is too short
    (Note: token strength).
    """
    network = settings.network
    if network.token:
        return _checked(network.token, "SPLITNET_TOKEN")
    if network.token_file:
        try:
            token = read_text_file(Path(network.token_file), MAX_TOKEN_FILE_BYTES).strip()
        except ValueError as exc:
            raise ConfigError(Violation("setting", f"SPLITNET_TOKEN_FILE={network.token_file}: "
                                                   f"{exc}")) from None
        if token:
            for warning in token_warnings(token, "SPLITNET_TOKEN_FILE"):
                _log.warning("%s", warning)
            return _checked(token, "SPLITNET_TOKEN_FILE")
        raise ConfigError(Violation("setting", f"SPLITNET_TOKEN_FILE={network.token_file} is "
                                               "empty"))
    raise ConfigError(Violation("setting", "no cluster token: set SPLITNET_TOKEN (the same "
                                           "secret on every client) or SPLITNET_TOKEN_FILE"))
