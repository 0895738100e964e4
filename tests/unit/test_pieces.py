"""Shard-first piece priorities (Note: shard first), with a fake libtorrent handle."""

import asyncio

import pytest

from splitnet.transport.pieces import ShardFirst
from splitnet.transport.swarm import Swarm


class FakeHandle:
    def __init__(self, num_pieces):
        self.priorities = [4] * num_pieces
        self.have = [False] * num_pieces
        self.availability = [1] * num_pieces

    def prioritize_pieces(self, priorities):
        self.priorities = list(priorities)

    def piece_priority(self, piece, priority):
        self.priorities[piece] = priority

    def status(self, flags=None):
        return type("Status", (), {"pieces": self.have})()

    def piece_availability(self):
        return self.availability


def test_only_the_own_shard_is_wanted_at_first():
    handle = FakeHandle(10)
    ShardFirst(handle, 10, 1, 3, 0.0)
    assert handle.priorities == [0, 7, 0, 0, 7, 0, 0, 7, 0, 0]


def test_a_piece_another_receiver_has_is_opened_and_the_rest_once_the_shard_is_in():
    handle = FakeHandle(6)
    picker = ShardFirst(handle, 6, 0, 2, 0.0)
    handle.availability[3] = 2  # the publisher and one receiver
    picker.update()
    assert handle.priorities == [7, 0, 7, 1, 7, 0]
    handle.have[0] = handle.have[2] = True
    picker.update()
    assert handle.priorities == [7, 0, 7, 1, 7, 0]
    handle.have[4] = True
    picker.update()
    assert handle.priorities == [7, 1, 7, 1, 7, 1] and not picker.closed


def test_more_receivers_than_pieces_opens_everything_at_once():
    handle = FakeHandle(2)
    picker = ShardFirst(handle, 2, 5, 8, 0.0)
    picker.update()
    assert handle.priorities == [1, 1]


def test_the_swarm_is_looked_at_no_more_often_than_the_interval():
    handle = FakeHandle(4)
    picker = ShardFirst(handle, 4, 0, 2, interval=60.0)
    picker.update()
    handle.availability[1] = 2
    picker.update()  # within the interval: nothing is looked at
    assert handle.priorities == [7, 0, 7, 0]


@pytest.mark.parametrize("index, count", [(-1, 3), (3, 3), (0, 0)])
def test_a_shard_outside_the_receivers_is_refused(index, count):
    with pytest.raises(ValueError, match="expected 0 <= index < count"):
        ShardFirst(FakeHandle(4), 4, index, count)


class FakeSession:
    def __init__(self):
        self.calls = []

    async def fetch(self, ref, peers, timeout, shard=None):
        self.calls.append((peers, shard))
        return b""


@pytest.mark.parametrize("me, publisher, sources, shard", [
    (3, 0, [0, 1, 3, 5], (1, 3)),     # receivers 1, 3, 5: client 3 is the second
    (1, 0, [5, 0, 1, 3], (0, 3)),     # order of the list does not matter
    (1, None, [0, 1, 3], None),       # not a broadcast: no shard
    (1, 0, [0, 1], None),             # a single receiver: no shard
    (0, 0, [0, 1, 3], None),          # the publisher itself
])
def test_the_swarm_gives_each_receiver_its_place_among_the_receivers(me, publisher, sources,
                                                                    shard):
    swarm = Swarm(me, 10.0)
    fake = FakeSession()
    swarm._session = fake  # type: ignore[assignment]
    for peer in sources:
        swarm.addresses[peer] = ("127.0.0.1", 7000 + peer)
    asyncio.run(swarm.fetch(None, sources, publisher=publisher))
    ((peers, got),) = fake.calls
    assert got == shard
    assert ("127.0.0.1", 7000 + me) not in peers and len(peers) == len(set(sources) - {me})


@pytest.mark.parametrize("size", [1, 1000, 3 * 65536 + 5, 5 * 1024 * 1024 + 17])
def test_a_torrent_hashed_from_memory_is_the_one_libtorrent_makes_from_the_file(tmp_path, size):
    """Note: hashing from memory: same info-hash as ``set_piece_hashes``, same file, same SHA-256."""
    import hashlib
    import random
    import warnings

    lt = pytest.importorskip("libtorrent")
    from splitnet.transport.pieces import piece_size_for
    from splitnet.transport.torrent_ref import make_torrent

    data = random.Random(size).randbytes(size)
    metadata, sha256 = make_torrent(data, "x.bin", tmp_path, "CERT")
    assert (tmp_path / "x.bin").read_bytes() == data
    assert sha256 == hashlib.sha256(data).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        storage = lt.file_storage()
        lt.add_files(storage, str(tmp_path / "x.bin"))
        creator = lt.create_torrent(storage, piece_size_for(size), lt.create_torrent.v1_only)
    creator.set_root_cert("CERT")
    lt.set_piece_hashes(creator, str(tmp_path))
    expected = lt.torrent_info(lt.bencode(creator.generate()))
    made = lt.torrent_info(metadata)
    assert made.info_hashes().get_best() == expected.info_hashes().get_best()
    assert made.num_pieces() == expected.num_pieces() and made.ssl_cert() == "CERT"
