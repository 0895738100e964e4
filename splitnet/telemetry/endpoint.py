"""The ``/metrics`` endpoint: plain HTTP, or HTTPS, with optional basic auth.

``METRICS_TLS=on`` serves over TLS with this client's certificate (``TLS_DIR``), so Prometheus
verifies it with the cluster CA (``tls_config: {ca_file, server_name: clientK}``);
``METRICS_AUTH_FILE`` names a file holding ``user:password``, and a request without those
credentials (HTTP basic auth, compared in constant time) is answered 401. Both are off by
default: the endpoint is read-only, and binding it to a private interface is the first defence.
"""

from __future__ import annotations

import base64
import hmac
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

__all__ = ["EndpointSecurity", "serve_metrics"]

StartResponse = Callable[..., Any]
READ_SECONDS = 10.0


class _Handler(_SilentHandler):
    """A request (and its TLS handshake) may take at most READ_SECONDS per read."""

    timeout = READ_SECONDS


@dataclass(frozen=True)
class EndpointSecurity:
    """How ``/metrics`` is protected: a certificate and key (TLS), and ``user:password``."""

    certfile: Path | None = None
    keyfile: Path | None = None
    credentials: str | None = None


def _guarded(app: Callable[..., Iterable[bytes]], credentials: str) -> Callable[..., Any]:
    expected = ("Basic " + base64.b64encode(credentials.encode()).decode()).encode()

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        given = str(environ.get("HTTP_AUTHORIZATION", "")).encode()
        if not hmac.compare_digest(given, expected):
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="splitnet"'),
                                                 ("Content-Type", "text/plain")])
            return [b"credentials required (METRICS_AUTH_FILE)\n"]
        return app(environ, start_response)

    return guarded


class _IPv6Server(ThreadingWSGIServer):
    """The metrics server on an IPv6 ``LISTEN_HOST`` (``::``, ``::1``)."""

    address_family = socket.AF_INET6


def serve_metrics(registry: CollectorRegistry, port: int, host: str,
                  security: EndpointSecurity | None = None) -> tuple[Any, threading.Thread]:
    """Serve ``registry`` on ``host:port`` from a daemon thread; return the server and thread."""
    security = security or EndpointSecurity()
    app: Callable[..., Any] = make_wsgi_app(registry)
    if security.credentials is not None:
        app = _guarded(app, security.credentials)
    server = make_server(host, port, app, _IPv6Server if ":" in host else ThreadingWSGIServer,
                         handler_class=_Handler)
    if security.certfile is not None and security.keyfile is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(security.certfile, security.keyfile)
        # the handshake happens in the request's thread, under its timeout, not in accept()
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
