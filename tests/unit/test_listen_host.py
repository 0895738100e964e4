"""``LISTEN_HOST``: an IPv6 address is written bare; ``::`` is every interface (Note: every
interface, ``transport/listen.py``)."""

import pytest

from splitnet.config.parsing import host
from splitnet.transport.listen import listen_socket, torrent_interfaces


@pytest.mark.parametrize("value", ["[::]", "[::1]", "[::"])
def test_a_bracketed_listen_host_is_refused_naming_the_bare_form(value):
    with pytest.raises(ValueError, match=r"written bare \(e\.g\. :: or ::1, no brackets\)"):
        host(value)


@pytest.mark.parametrize("value", ["::", "::1", "0.0.0.0", "client1"])
def test_a_bare_listen_host_is_taken(value):
    assert host(value) == value


def test_libtorrent_listens_on_both_families_for_every_interface():
    assert torrent_interfaces("::", 7000) == "0.0.0.0:7000,[::]:7000"
    assert torrent_interfaces("::1", 7000) == "[::1]:7000"
    assert torrent_interfaces("127.0.0.1", 0) == "127.0.0.1:0"


def test_only_every_interface_gets_a_socket_of_its_own():
    assert listen_socket("127.0.0.1", 0) is None and listen_socket("::1", 0) is None
