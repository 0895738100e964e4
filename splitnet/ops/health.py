"""``splitnet health``: whether the client in this container answers (Docker's health check)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from splitnet.config.fields import MAX_CLIENTS
from splitnet.config.parsing import host_port_list, integer, show
from splitnet.errors import (
    EXIT_OK,
    EXIT_RUNTIME,
    ConfigError,
    PeerUnavailable,
    SplitnetError,
    Violation,
)
from splitnet.transport.client import PeerClient
from splitnet.transport.tls import TlsFiles, load_identity, tls_wanted

__all__ = ["check_health", "client_port"]

_PORT = integer(1, 65535)
T = TypeVar("T")


def client_port(environ: Mapping[str, str]) -> int:
    """Return the port the client of ``environ`` listens on, read as the client reads it.

    With ``PEERS``: the port of its own entry (``CLIENT_NUMBER``); else ``GRPC_PORT`` (50051).
    A value the client would refuse is a ConfigError naming it.
    """
    peers, me = environ.get("PEERS", "").strip(), environ.get("CLIENT_NUMBER", "").strip()
    if not (peers and me):
        return _read("GRPC_PORT", environ, _PORT)
    entries = _read("PEERS", environ, host_port_list).split(",")
    k = _read("CLIENT_NUMBER", environ, integer(1, len(entries)))
    return int(entries[k - 1].strip().rpartition(":")[2])


def _read(key: str, environ: Mapping[str, str], parse: Callable[[str], T]) -> T:
    raw = environ.get(key, "").strip() or ("50051" if key == "GRPC_PORT" else "")
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(Violation("setting", f"{key}={show(raw)}: {exc}"),
                          "the environment") from None


def _dial_host(listen_host: str) -> str:
    """Return where to reach this container's client: its LISTEN_HOST unless that is any."""
    host = listen_host.strip().strip("[]")
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def check_health(port: int | None = None,
                 environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Ping the client on loopback; return the exit code and the line to print.

    The port defaults to the one the client listens on (:func:`client_port`) and the token to
    ``SPLITNET_TOKEN`` or the file ``SPLITNET_TOKEN_FILE`` names, read from the environment as
    the container sets them (an empty value is unset). A bad value there is a ConfigError.
    With TLS (``TLS=on``, or ``auto`` with a CA in ``TLS_DIR``) it calls over mutual TLS as the
    container's own client (``CLIENT_NUMBER``, its files in ``TLS_DIR``), which its server takes
    like any member.
    """
    environ = os.environ if environ is None else environ
    environ = {key: value for key, value in environ.items() if value.strip() != ""}
    port = port or client_port(environ)
    where = _dial_host(environ.get("LISTEN_HOST", ""))
    token = environ.get("SPLITNET_TOKEN", "")
    if not token and environ.get("SPLITNET_TOKEN_FILE"):
        try:
            token = Path(environ["SPLITNET_TOKEN_FILE"]).read_text().strip()
        except OSError:
            token = ""  # a wrong token still gets an answer (UNAUTHENTICATED): alive

    me, identity = 0, None
    folder = Path(environ.get("TLS_DIR", "./certs"))
    if tls_wanted(environ.get("TLS", "auto").strip().lower(), folder):
        me = _read("CLIENT_NUMBER", environ, integer(1, MAX_CLIENTS))
        try:
            identity = load_identity(TlsFiles.in_folder(folder, me), me)
        except ValueError as exc:
            return EXIT_RUNTIME, f"unhealthy: TLS=on but {exc}"

    async def ping() -> int:
        client = PeerClient(me, f"{where}:{port}", token, me, 5.0, identity=identity)
        try:
            return await client.ping(timeout=5.0)
        finally:
            await client.aclose()

    try:
        round_ = asyncio.run(ping())
    except PeerUnavailable as exc:
        return EXIT_RUNTIME, f"unhealthy: {exc}"
    except SplitnetError:
        round_ = -1  # it answered (e.g. UNAUTHENTICATED): the process is alive
    return EXIT_OK, f"healthy (round {round_})" if round_ >= 0 else "healthy"
