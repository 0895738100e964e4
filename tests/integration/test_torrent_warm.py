"""The warm fetch path: peers dialled on the private tracker's answer, shard-first broadcasts.

Real libtorrent sessions and a real HTTP tracker on loopback; no timing is asserted.
"""

import asyncio
import random
import urllib.error
import urllib.request

import libtorrent as lt
import pytest

from splitnet.errors import ProtocolError
from splitnet.transport.torrent import TorrentRef, TorrentSession
from splitnet.transport.tracker import Tracker, tracker_keys

pytestmark = pytest.mark.integration


@pytest.fixture
def tracker():
    t = Tracker()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def sessions(tmp_path):
    made = []

    def make(count, **kw):
        new = [TorrentSession(tmp_path / f"s{len(made) + i}", **kw) for i in range(count)]
        made.extend(new)
        return new

    try:
        yield make
    finally:
        for s in made:
            s.close()


def payload(seed, size):
    return random.Random(seed).randbytes(size)


def addr(session):
    return ("127.0.0.1", session.port)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, lt.bdecode(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, lt.bdecode(exc.read())


def test_the_tracker_answers_registered_peers_compactly_and_unknown_hashes_with_none(tracker):
    key = "ab" * 20
    tracker.register([key], [("127.0.0.1", 6881), ("10.0.0.2", 7000), ("not-an-ip", 1)])
    raw = "".join(f"%{b:02x}" for b in bytes.fromhex(key))
    status, body = get(tracker.url + f"?info_hash={raw}&port=1")
    assert status == 200
    assert body[b"peers"] == bytes([127, 0, 0, 1, 0x1A, 0xE1, 10, 0, 0, 2, 0x1B, 0x58])
    assert tracker.answered(key) == 1
    status, body = get(tracker.url + "?info_hash=" + "%00" * 20)
    assert status == 200 and body[b"peers"] == b""
    tracker.forget([key])
    assert get(tracker.url + f"?info_hash={raw}")[1][b"peers"] == b""


@pytest.mark.parametrize("query", ["", "?info_hash=short", "?info_hash=" + "%ff" * 21,
                                   "?info_hash=" + "%00" * 20 + "&info_hash=" + "%01" * 20])
def test_a_malformed_announce_gets_400_and_the_tracker_keeps_serving(tracker, query):
    status, body = get(tracker.url + query)
    assert status == 400 and b"info_hash" in body[b"failure reason"]
    status, _ = get(tracker.url.replace("/announce", "/scrape") + "?info_hash=" + "%00" * 20)
    assert status == 400
    assert get(tracker.url + "?info_hash=" + "%00" * 20)[0] == 200


def test_many_fetches_in_a_row_each_complete_with_peers_from_the_tracker(sessions):
    pub, sub = sessions(2)
    for i in range(6):
        data = payload(i, 256 * 1024 + i)
        ref = pub.publish(f"round{i}.bin", data)
        assert asyncio.run(sub.fetch(ref, [addr(pub)], timeout=30)) == data
        info = lt.torrent_info(ref.metadata)
        assert sum(sub._tracker.answered(k) for k in tracker_keys(info.info_hashes())) >= 1
        pub.remove(ref.info_hash)
        sub.remove(ref.info_hash)
        assert all(sub._tracker.answered(k) == 0 for k in tracker_keys(info.info_hashes()))
    assert sub.torrents() == [] and pub.torrents() == []


def test_a_bad_reference_is_refused_before_anything_is_added_or_registered(sessions):
    pub, sub = sessions(2)
    ref = pub.publish("model.bin", payload(1, 100_000))
    other = pub.publish("other.bin", payload(2, 100_000))
    forged = TorrentRef(ref.name, ref.info_hash, other.metadata, ref.size, ref.sha256)
    with pytest.raises(ProtocolError, match="does not match its reference"):
        asyncio.run(sub.fetch(forged, [addr(pub)], timeout=10))
    garbage = TorrentRef(ref.name, ref.info_hash, b"d4:spam", ref.size, ref.sha256)
    with pytest.raises(ProtocolError, match="does not parse"):
        asyncio.run(sub.fetch(garbage, [addr(pub)], timeout=10))
    assert sub.torrents() == []
    for r in (ref, other):
        keys = tracker_keys(lt.torrent_info(r.metadata).info_hashes())
        assert all(sub._tracker.answered(k) == 0 for k in keys)
    assert sub._tracker._server.table == {}


def test_shard_first_receivers_complete_and_the_publisher_uploads_little_more_than_once(
        sessions):
    size, cap = 6 * 1024 * 1024, 3 * 1024 * 1024
    (pub,) = sessions(1, upload_limit=cap)
    receivers = sessions(4, upload_limit=cap)
    data = payload(7, size)
    ref = pub.publish("model.bin", data)
    everyone = [addr(pub)] + [addr(r) for r in receivers]

    async def fetch_all():
        return await asyncio.gather(*(
            r.fetch(ref, [a for a in everyone if a != addr(r)], 90, (i, len(receivers)))
            for i, r in enumerate(receivers)))

    assert all(got == data for got in asyncio.run(fetch_all()))
    uploaded = pub.uploaded(ref.info_hash)
    assert size <= uploaded < 1.6 * size, uploaded / size


def test_the_exchange_bench_runs_both_transports_uncapped_and_capped(tmp_path):
    from splitnet.bench.exchange import exchange_rows

    cap = 4 * 1024 * 1024
    rows = exchange_rows(3, 512 * 1024, cap, tmp_path)
    assert [r["cap"] for r in rows] == [0, cap]
    assert all(r["torrent_s"] > 0 and r["grpc_s"] > 0 for r in rows)
    assert all(r["ratio"] == r["torrent_s"] / r["grpc_s"] for r in rows)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # every session cleaned up
