"""Where peers are and how they prove they belong: addresses and the cluster token."""

from __future__ import annotations

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
    "token_file_findings",
    "token_violation",
    "token_warnings",
]

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


def _read_token_file(token_file: str) -> str:
    """Return the token in ``token_file``; ``ValueError`` naming the rule (unreadable, empty)."""
    token = read_text_file(Path(token_file), MAX_TOKEN_FILE_BYTES).strip()
    if not token:
        raise ValueError("is empty; expected the cluster token")
    return token


def token_file_findings(token: str | None, token_file: str | None) -> tuple[
        list[Violation], list[str]]:
    """Read and check ``SPLITNET_TOKEN_FILE`` as a client will; return violations and warnings.

    The file is ignored (a warning says so) when ``SPLITNET_TOKEN`` is set too; its token is
    checked as ``SPLITNET_TOKEN``'s is (Note: token strength). Never raises.
    """
    if not token_file:
        return [], []
    if token:
        return [], [f"SPLITNET_TOKEN_FILE={token_file} is ignored: SPLITNET_TOKEN is set too, "
                    "and wins; set only one"]
    try:
        from_file = _read_token_file(token_file)
    except ValueError as exc:
        return [Violation("setting", f"SPLITNET_TOKEN_FILE={token_file}: {exc}")], []
    weak = token_violation(from_file, "SPLITNET_TOKEN_FILE")
    return [weak] if weak else [], token_warnings(from_file, "SPLITNET_TOKEN_FILE")


def resolve_token(settings: Settings) -> str:
    """Return the cluster credential from ``SPLITNET_TOKEN`` or ``SPLITNET_TOKEN_FILE``.

    ConfigError when neither is set, the file cannot be read, or the token is too short
    (Note: token strength). :func:`~splitnet.config.load` has checked both already (and
    warned of a placeholder): the file is read again here, as it may have changed.
    """
    network = settings.network
    token, key = network.token, "SPLITNET_TOKEN"
    if not token and network.token_file:
        key = "SPLITNET_TOKEN_FILE"
        try:
            token = _read_token_file(network.token_file)
        except ValueError as exc:
            raise ConfigError(Violation("setting", f"{key}={network.token_file}: {exc}"),
                              settings.source) from None
    if not token:
        raise ConfigError(Violation("setting", "no cluster token: set SPLITNET_TOKEN (the same "
                                               "secret on every client) or SPLITNET_TOKEN_FILE"))
    violation = token_violation(token, key)
    if violation is not None:
        raise ConfigError(violation, settings.source)
    return token
