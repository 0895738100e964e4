"""How a client guards its ``/metrics``: ``METRICS_TLS`` and ``METRICS_AUTH_FILE``."""

from __future__ import annotations

from pathlib import Path

from splitnet.config.files import read_text_file
from splitnet.config.settings import Settings
from splitnet.errors import ConfigError, Violation
from splitnet.telemetry.endpoint import EndpointSecurity
from splitnet.transport.tls import TlsFiles

__all__ = ["MAX_AUTH_FILE_BYTES", "endpoint_security"]

MAX_AUTH_FILE_BYTES = 4096


def endpoint_security(settings: Settings) -> EndpointSecurity:
    """Return how ``/metrics`` is served; ConfigError naming the setting that is wrong."""
    output, me = settings.output, settings.network.client_number or 0
    certfile = keyfile = None
    if output.metrics_tls == "on":
        files = TlsFiles.in_folder(Path(settings.network.tls_dir), me)
        missing = [str(p) for p in (files.cert, files.key) if not p.is_file()]
        if missing:
            raise ConfigError(Violation("setting", f"METRICS_TLS=on needs this client's "
                                                   f"certificate and key: {', '.join(missing)} "
                                                   "missing (TLS_DIR; splitnet certs)"))
        certfile, keyfile = files.cert, files.key
    credentials = None
    if output.metrics_auth_file:
        try:
            credentials = read_text_file(Path(output.metrics_auth_file),
                                         MAX_AUTH_FILE_BYTES).strip()
        except ValueError as exc:
            raise ConfigError(Violation("setting", f"METRICS_AUTH_FILE="
                                                   f"{output.metrics_auth_file}: {exc}")) from None
        user, colon, password = credentials.partition(":")
        if not colon or not user or len(password) < 8 or "\n" in credentials:
            raise ConfigError(Violation("setting", f"METRICS_AUTH_FILE="
                                                   f"{output.metrics_auth_file}: expected one "
                                                   "line user:password, the password at least "
                                                   "8 characters"))
    return EndpointSecurity(certfile, keyfile, credentials)
