"""SSL torrents with real libtorrent sessions on loopback: only cluster members get a piece.

Every session here that has a TLS identity publishes SSL torrents (the cluster CA inside the
metadata) and listens on an SSL port only. A member fetches bit-exact; a session with another
CA's certificate, with an expired certificate, or with none, knowing the info-hash, the metadata
and the port, gets no piece; bytes captured from a member's connection and replayed get nothing;
and the seeder keeps serving members afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import socket

import libtorrent as lt
import pytest
import torch

from splitnet.errors import ProtocolError, TransferFailed
from splitnet.ops.certs import make_certs
from splitnet.transport.tls import Identity, TlsFiles, load_identity
from splitnet.transport.torrent import TorrentSession

from .capture import CapturingProxy
from .cluster import make_plan, run_cluster
from .test_runtime import example, final_model

pytestmark = pytest.mark.integration

PAYLOAD = os.urandom(1_500_000)


@pytest.fixture(scope="module")
def ids(tmp_path_factory):
    """Members 1..3, another CA's client 2, an expired member 2 (signed by our CA)."""
    root = tmp_path_factory.mktemp("tls")
    make_certs(root / "ours", [1, 2, 3])
    make_certs(root / "theirs", [2])
    ours = {k: load_identity(TlsFiles.in_folder(root / "ours", k), k) for k in (1, 2, 3)}
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    (root / "old").mkdir()
    for name in ("ca.crt", "ca.key"):
        (root / "old" / name).write_bytes((root / "ours" / name).read_bytes())
    make_certs(root / "old", [2], days=1, now=past, add=True)
    old = TlsFiles.in_folder(root / "old", 2)
    expired = Identity(2, old, ours[1].ca_pem, old.cert.read_bytes(), old.key.read_bytes(), past)
    return {**ours, "theirs": load_identity(TlsFiles.in_folder(root / "theirs", 2), 2),
            "expired": expired}


@pytest.fixture
def seeder(ids, tmp_path):
    session = TorrentSession(tmp_path / "seed", identity=ids[1])
    yield session
    session.close()


# A member's fetch returns as soon as it is done: a long limit costs nothing when it works and
# spares a busy machine a false failure. A non-member's fetch must fail: 4 s shows that.
MEMBER_FETCH = 60.0


def _fetch(tmp_path, name, identity, ref, port, timeout=MEMBER_FETCH):
    session = TorrentSession(tmp_path / name, identity=identity)
    try:
        return asyncio.run(session.fetch(ref, [("127.0.0.1", port)], timeout))
    finally:
        session.close()


def test_a_member_fetches_an_ssl_torrent_bit_exact(ids, seeder, tmp_path):
    ref = seeder.publish("model.safetensors", PAYLOAD)
    assert seeder.session.listen_port() == 0 and seeder.port > 0  # the SSL port only
    assert _fetch(tmp_path, "member", ids[2], ref, seeder.port) == PAYLOAD
    assert seeder.uploaded(ref.info_hash) >= len(PAYLOAD)


@pytest.mark.parametrize("who", ["theirs", "expired", None])
def test_a_non_member_with_the_info_hash_and_port_gets_no_piece(ids, seeder, tmp_path, who):
    ref = seeder.publish("model.safetensors", PAYLOAD)
    stranger = ids[who] if who else None
    session = TorrentSession(tmp_path / "stranger", identity=stranger)
    try:
        if stranger is None:  # no certificate at all: it takes the torrent as it comes
            with pytest.raises(TransferFailed, match="0% done"):
                asyncio.run(session.fetch(ref, [("127.0.0.1", seeder.port)], 4.0))
        elif who == "theirs":  # its own CA is not in the torrent: it refuses the reference
            with pytest.raises(ProtocolError, match="not an SSL torrent of this cluster"):
                asyncio.run(session.fetch(ref, [("127.0.0.1", seeder.port)], 4.0))
        else:
            with pytest.raises(TransferFailed, match="0% done"):
                asyncio.run(session.fetch(ref, [("127.0.0.1", seeder.port)], 4.0))
    finally:
        session.close()
    assert seeder.uploaded(ref.info_hash) == 0
    assert _fetch(tmp_path, "member", ids[3], ref, seeder.port) == PAYLOAD  # still serving


def test_another_cas_member_forcing_the_torrent_gets_no_piece(ids, seeder, tmp_path):
    """A stranger that skips its own check (adds the cluster's torrent anyway) is refused."""
    ref = seeder.publish("model.safetensors", PAYLOAD)
    session = TorrentSession(tmp_path / "forced")
    try:
        handle = session._add(lt.torrent_info(ref.metadata),
                              tmp_path / "forced", seed=False, key=ref.info_hash,
                              peers=[("127.0.0.1", seeder.port)])
        theirs = ids["theirs"]  # ... presenting its own CA's certificate
        handle.set_ssl_certificate_buffer(theirs.cert_pem.decode(), theirs.key_pem.decode(), "")

        async def wait():
            for _ in range(40):
                handle.connect_peer(("127.0.0.1", seeder.port))
                await asyncio.sleep(0.1)
        asyncio.run(wait())
        assert handle.status().total_payload_download == 0
    finally:
        session.close()
    assert seeder.uploaded(ref.info_hash) == 0


def test_a_tls_fetcher_refuses_a_plain_torrent(ids, tmp_path):
    plain = TorrentSession(tmp_path / "plain")
    try:
        ref = plain.publish("model.safetensors", PAYLOAD)
        with pytest.raises(ProtocolError, match="not an SSL torrent"):
            _fetch(tmp_path, "member", ids[2], ref, plain.port)
    finally:
        plain.close()


def test_plaintext_bittorrent_and_replayed_bytes_get_nothing(ids, seeder, tmp_path):
    ref = seeder.publish("model.safetensors", PAYLOAD)
    captured = bytearray()

    async def capture():  # a real member fetches through the proxy
        async with CapturingProxy(seeder.port) as proxy:
            member = TorrentSession(tmp_path / "member", identity=ids[2])
            try:
                assert await member.fetch(ref, [("127.0.0.1", proxy.port)],
                                          MEMBER_FETCH) == PAYLOAD
            finally:
                member.close()
            captured.extend(proxy.captured)

    asyncio.run(capture())
    served = seeder.uploaded(ref.info_hash)
    assert len(captured) > 100
    handshake = b"\x13BitTorrent protocol" + bytes(8) + bytes.fromhex(ref.info_hash[:40]) + \
        hashlib.sha1(b"stranger").digest()
    for attempt in (bytes(captured), handshake):  # a replay, and plaintext BitTorrent
        with socket.create_connection(("127.0.0.1", seeder.port), timeout=5) as sock:
            sock.sendall(attempt)
            received = b""
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except (ConnectionResetError, TimeoutError):
                pass
        assert len(received) < 4096  # at most a TLS alert or a server hello, never a piece
    assert seeder.uploaded(ref.info_hash) == served
    assert _fetch(tmp_path, "again", ids[3], ref, seeder.port) == PAYLOAD


def test_a_whole_run_over_ssl_torrents_trains_like_plain_grpc(tmp_path):
    values = example("owner_and_helper.env", TRAINING_NUM_ROUNDS="2")
    certs = tmp_path / "certs"
    make_certs(certs, range(1, make_plan(values, 1).num_clients + 1))
    outcome = run_cluster({**values, "BULK_TRANSPORT": "grpc"}, tmp_path / "plain")
    assert not [r for r in outcome if isinstance(r, BaseException)], outcome
    tls = {**values, "BULK_TRANSPORT": "torrent", "TLS": "on", "TLS_DIR": str(certs)}
    outcome = run_cluster(tls, tmp_path / "tls")
    assert not [r for r in outcome if isinstance(r, BaseException)], outcome
    assert outcome[0]["bulk_transport"] == "torrent"
    plain, ssl = final_model(tmp_path / "plain"), final_model(tmp_path / "tls")
    for key, value in plain.items():
        assert torch.equal(value, ssl[key]), key
