"""``splitnet health``: whether the client in this container answers (Docker's health check)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from splitnet.errors import EXIT_OK, EXIT_RUNTIME, PeerUnavailable, SplitnetError
from splitnet.transport.client import PeerClient
from splitnet.transport.tls import TlsFiles, load_identity, tls_wanted

__all__ = ["check_health"]


def check_health(port: int | None = None,
                 environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Ping the client on loopback; return the exit code and the line to print.

    The port defaults to ``GRPC_PORT`` (else 50051) and the token to ``SPLITNET_TOKEN`` or the
    file ``SPLITNET_TOKEN_FILE`` names, read from the environment as the container sets them.
    With TLS (``TLS=on``, or ``auto`` with a CA in ``TLS_DIR``) it calls over mutual TLS as the
    container's own client (``CLIENT_NUMBER``, its files in ``TLS_DIR``), which its server takes
    like any member.
    """
    environ = os.environ if environ is None else environ
    port = port or int(environ.get("GRPC_PORT", "50051"))
    token = environ.get("SPLITNET_TOKEN", "")
    if not token and environ.get("SPLITNET_TOKEN_FILE"):
        try:
            token = Path(environ["SPLITNET_TOKEN_FILE"]).read_text().strip()
        except OSError:
            token = ""  # a wrong token still gets an answer (UNAUTHENTICATED): alive

    me, identity = 0, None
    folder = Path(environ.get("TLS_DIR", "./certs"))
    if tls_wanted(environ.get("TLS", "auto").lower(), folder):
        me = int(environ.get("CLIENT_NUMBER", "0") or 0)
        try:
            identity = load_identity(TlsFiles.in_folder(folder, me), me)
        except ValueError as exc:
            return EXIT_RUNTIME, f"unhealthy: TLS=on but {exc}"

    async def ping() -> int:
        client = PeerClient(me, f"127.0.0.1:{port}", token, me, 5.0, identity=identity)
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
