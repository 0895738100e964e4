"""Listeners: where a client may listen, and what a failure to bind one means.

Note: bind failures. A client opens up to four listeners on ``LISTEN_HOST`` (gRPC on its
``PEERS`` port, the direct channel on ``TENSOR_PORT``, libtorrent on ``TORRENT_PORT``, metrics on
``METRICS_PORT``). A bind that fails is never worth minutes of retries, with one exception:

- ``LISTEN_HOST`` that does not resolve, or is no address of this machine, can never work:
  :func:`check_listen_host` stops the client at once with a ConfigError naming ``LISTEN_HOST``
  (exit 2), before any listener opens.
- A port that is in use raises :class:`~splitnet.errors.BindFailed` naming its key. The first
  incarnation of a client turns it into a ConfigError (exit 2: another process holds the port);
  only an incarnation restarted in-process after a lost peer retries it
  (:mod:`splitnet.node.rejoin`), since its predecessor may hold the port a moment longer.
- A port this process may not bind (below 1024 without the privilege) is a ConfigError naming
  the key.

Note: every interface. ``LISTEN_HOST=::`` means every interface, IPv4 and IPv6, as gRPC and the
metrics server read it; asyncio and libtorrent would listen on IPv6 alone, so the direct channel
gets a dual-stack socket (:func:`listen_socket`) and libtorrent both ``0.0.0.0`` and ``[::]`` on
one port (:func:`torrent_interfaces`).

gRPC reports a failed bind without the reason; :func:`bind_problem` binds a plain socket to the
same address to learn it, and a port that is free by then is bound again by gRPC
(``transport/server.py``), never reported as a configuration error.
"""

from __future__ import annotations

import errno
import socket

from splitnet.errors import BindFailed, ConfigError, SplitnetError, Violation

__all__ = ["bind_problem", "check_listen_host", "listen_failure", "listen_socket",
           "torrent_interfaces"]

_ZERO = {"METRICS_PORT": ", or 0 to turn metrics off", "TENSOR_PORT": ", or 0 for any free port",
         "TORRENT_PORT": ", or 0 for any free port"}
_HOST_ERRNOS = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})


def _host_error(host: str, why: str) -> ConfigError:
    hint = " (write an IPv6 address without brackets, e.g. ::1)" if host.startswith("[") else ""
    return ConfigError(Violation("setting", f"LISTEN_HOST={host!r}: {why}{hint}; use 0.0.0.0 "
                                 "(every IPv4 interface), :: (every interface) or an address "
                                 "of this machine"))


def _addresses(host: str) -> list[tuple[int, tuple[str, int]]]:
    """Return ``(family, sockaddr)`` for every address ``host`` names (gaierror if none)."""
    infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return [(family, (str(addr[0]), 0)) for family, _, _, _, addr in infos]


def check_listen_host(host: str) -> None:
    """Raise a ConfigError naming ``LISTEN_HOST`` unless this machine can listen on ``host``."""
    try:
        addresses = _addresses(host)
    except (socket.gaierror, UnicodeError) as exc:
        raise _host_error(host, f"does not resolve ({getattr(exc, 'strerror', exc)})") from None
    for family, address in addresses[:1]:  # listeners bind the first address, as gRPC does
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno in _HOST_ERRNOS:
                    raise _host_error(host, f"is not an address of this machine "
                                            f"({exc.strerror})") from None
                raise


def bind_problem(host: str, port: int) -> OSError | None:
    """Return why ``host:port`` cannot be bound now (None: it can), with a plain socket."""
    try:
        addresses = _addresses(host)
    except OSError as exc:
        return exc
    family, (address, _) = addresses[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as listeners do
        try:
            sock.bind((address, port))
        except OSError as exc:
            return exc
    return None


def listen_failure(me: int, what: str, key: str, host: str, port: int,
                   exc: OSError) -> SplitnetError:
    """Return the error of client ``me``'s ``what`` listener failing to bind (Note: bind failures).

    ``key`` is the setting that gave ``port``; ``exc`` the bind's error.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror) or exc.errno in _HOST_ERRNOS:
        return _host_error(host, f"client {me} cannot listen for {what} on it ({reason})")
    if exc.errno == errno.EACCES:
        return ConfigError(Violation("setting", f"{key}: client {me} may not listen for {what} "
                                     f"on {where} ({reason}); ports below 1024 need "
                                     "privileges: choose another"))
    zero = _ZERO.get(key, "")
    busy = "the port is in use" if exc.errno == errno.EADDRINUSE else reason
    return BindFailed(f"client {me} cannot listen for {what} on {where}: {busy}; set {key} "
                      f"to a free port{zero}", key)


def listen_socket(host: str, port: int) -> socket.socket | None:
    """Return a bound, listening dual-stack socket for ``::`` (Note: every interface), else None.

    Raises OSError as a bind does.
    """
    if host != "::":
        return None
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def torrent_interfaces(host: str, port: int) -> str:
    """Return libtorrent's ``listen_interfaces`` for ``host:port`` (Note: every interface)."""
    if host == "::":
        return f"0.0.0.0:{port},[::]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
