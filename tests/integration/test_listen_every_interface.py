"""``LISTEN_HOST=::`` takes IPv4 and IPv6 peers on the direct channel's socket and on libtorrent;
a ``TORRENT_PORT`` in use is a bind failure, not another port (Note: bind failures)."""

import asyncio
import errno
import socket

import pytest

from splitnet.transport.listen import listen_socket
from splitnet.transport.ports import free_ports
from splitnet.transport.torrent import TorrentSession

from .net import ipv6_loopback

pytestmark = pytest.mark.integration


def _connects(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(5)
        return sock.connect_ex((address, port)) == 0


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_the_direct_channel_socket_for_every_interface_takes_both_families():
    async def main() -> list[bytes]:
        got: list[bytes] = []

        async def serve(reader, writer):
            got.append(await reader.read(5))
            writer.close()

        sock = listen_socket("::", 0)
        assert sock is not None
        server = await asyncio.start_server(serve, sock=sock)
        port = server.sockets[0].getsockname()[1]
        for address in ("127.0.0.1", "::1"):
            _, writer = await asyncio.open_connection(address, port)
            writer.write(b"hello")
            await writer.drain()
            writer.close()
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.05)
        server.close()
        return got

    assert asyncio.run(main()) == [b"hello", b"hello"]


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_libtorrent_for_every_interface_takes_both_families(tmp_path):
    session = TorrentSession(tmp_path, host="::", port=0)
    assert _connects("127.0.0.1", session.port) and _connects("::1", session.port)


def test_a_torrent_port_in_use_is_a_bind_failure_not_the_next_port(tmp_path):
    port = free_ports(1)[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        with pytest.raises(OSError) as caught:
            TorrentSession(tmp_path, host="127.0.0.1", port=port)
    assert caught.value.errno == errno.EADDRINUSE
