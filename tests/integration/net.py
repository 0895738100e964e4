"""What this machine's network offers the integration tests."""

import socket


def ipv6_loopback() -> bool:
    """Return whether this machine can bind IPv6 loopback (``::1``)."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False
