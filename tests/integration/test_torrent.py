"""BitTorrent bulk transfer with real libtorrent sessions on loopback (no mocks)."""

import asyncio
import os

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from splitnet.errors import TransferFailed
from splitnet.transport.codec import DTYPES
from splitnet.transport.torrent import TorrentRef, TorrentSession, piece_size_for

from .cluster import run_cluster
from .test_runtime import example, final_model

pytestmark = pytest.mark.integration


def sessions(tmp_path, count, **kw):
    return [TorrentSession(tmp_path / f"s{i}", **kw) for i in range(count)]


def addr(session):
    return ("127.0.0.1", session.port)


def test_piece_size_grows_with_the_payload():
    assert piece_size_for(1000) == 64 * 1024
    assert piece_size_for(256 * 1024**2) == 1024**2
    assert piece_size_for(10 * 1024**3) == 4 * 1024**2


def test_publish_fetch_round_trip_is_bit_exact_for_every_dtype(tmp_path):
    pub, sub = sessions(tmp_path, 2)
    state = {name: (torch.randn(17, 5) * 30).to(dtype) for name, dtype in DTYPES.items()}
    data = save_safetensors(state)
    ref = pub.publish("state.safetensors", data)
    got = asyncio.run(sub.fetch(ref, [addr(pub)], timeout=20))
    back = load_safetensors(got)
    assert got == data and back.keys() == state.keys()
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor)
    assert TorrentRef.from_json(ref.to_json()) == ref


def test_four_receivers_swarm_so_the_publisher_uploads_less_than_four_copies(tmp_path):
    size = 8 * 1024 * 1024
    pub = TorrentSession(tmp_path / "pub", upload_limit=3 * 1024 * 1024)
    receivers = sessions(tmp_path, 4)
    data = os.urandom(size)
    ref = pub.publish("model.bin", data)
    everyone = [addr(pub)] + [addr(r) for r in receivers]

    async def fetch_all():
        return await asyncio.gather(*(
            r.fetch(ref, [a for a in everyone if a != addr(r)], timeout=60) for r in receivers))

    assert all(got == data for got in asyncio.run(fetch_all()))
    uploaded = pub.uploaded(ref.info_hash)
    # Without swarming the publisher would upload 4 copies. libtorrent's own picking (no shard
    # given) measured 1.7-2.6 copies since fetches dial at once (Note: connection tick): the
    # receivers first ask the publisher for the same pieces. Shard first, as the bulk transport
    # fetches a broadcast, is bounded tighter in test_torrent_warm.py.
    assert size <= uploaded < 3.5 * size, uploaded / size


def test_a_receiver_completes_from_the_remaining_seed_when_one_dies(tmp_path):
    size = 6 * 1024 * 1024
    first = TorrentSession(tmp_path / "first", upload_limit=2 * 1024 * 1024)
    second = TorrentSession(tmp_path / "second", upload_limit=2 * 1024 * 1024)
    late = TorrentSession(tmp_path / "late")
    data = os.urandom(size)
    ref = first.publish("model.bin", data)

    async def scenario():
        second.session.apply_settings({"upload_rate_limit": 0})
        assert await second.fetch(ref, [addr(first)], timeout=30) == data
        second.session.apply_settings({"upload_rate_limit": 2 * 1024 * 1024})
        fetching = asyncio.ensure_future(late.fetch(ref, [addr(first), addr(second)], timeout=60))
        await asyncio.sleep(1.0)
        assert not fetching.done()
        first.close()  # the first seeder dies mid-transfer
        first.session.pause()
        return await fetching

    assert asyncio.run(scenario()) == data


def test_a_tampered_payload_is_never_loaded(tmp_path):
    pub, sub = sessions(tmp_path, 2)
    data = os.urandom(1024 * 1024)
    ref = pub.publish("model.bin", data)
    (path,) = [p for p in (tmp_path / "s0").rglob("model.bin")]
    path.write_bytes(bytes(b ^ 0xFF for b in data[:4096]) + data[4096:])  # a seeder lies
    # libtorrent checks a seed-mode piece when it first reads it, so the lie never leaves the
    # seeder; either way the fetch fails, naming the object and the peers, and loads nothing.
    with pytest.raises(TransferFailed, match=r"fetching model.bin .*did not complete.*peers tried: 127\.0\.0\.1"):
        asyncio.run(sub.fetch(ref, [addr(pub)], timeout=4))
    assert sub.torrents() == [] and sub.disk_bytes() == 0


def test_a_peer_serving_a_wrong_piece_is_refused_by_the_fetchers_own_piece_check(tmp_path):
    """Note: no second hash: the fetcher's libtorrent refuses the piece; nothing is loaded."""
    pub, sub = sessions(tmp_path, 2)
    data = os.urandom(1024 * 1024)
    ref = pub.publish("model.bin", data)
    (path,) = [p for p in (tmp_path / "s0").rglob("model.bin")]
    lie = bytearray(data)
    lie[len(data) // 2] ^= 0x01  # one bit of one piece in the middle; the seeder serves it as good
    path.write_bytes(bytes(lie))
    with pytest.raises(TransferFailed, match=r"[1-9][0-9]* piece\(s\) failed verification"):
        asyncio.run(sub.fetch(ref, [addr(pub)], timeout=4))
    assert sub.torrents() == [] and sub.disk_bytes() == 0
    assert pub.uploaded(ref.info_hash) > 0  # the lie did leave the seeder: the fetcher refused it


def test_torrent_and_grpc_bulk_give_the_same_averaged_weights(tmp_path):
    results = {}
    for bulk in ("grpc", "torrent"):
        values = example("owner_and_helper.env", TRAINING_NUM_ROUNDS="2", BULK_TRANSPORT=bulk)
        outcome = run_cluster(values, tmp_path / bulk)
        assert not [r for r in outcome if isinstance(r, BaseException)], outcome
        assert outcome[0]["bulk_transport"] == bulk
        results[bulk] = final_model(tmp_path / bulk)
    for key, value in results["grpc"].items():
        assert torch.equal(value, results["torrent"][key]), key


def test_auto_bulk_with_states_inline_and_models_by_torrent_trains_like_torrent(tmp_path):
    # Note: one receiver goes inline (transport/bulk.py): with a threshold below the model's
    # size, auto sends the models by BitTorrent (every client seeds one: disk in use) but each
    # client's states inline (which object goes which way: test_network.py); the mixed
    # exchange gives exactly the weights of an all-BitTorrent one
    disk, models = {}, {}
    for bulk in ("torrent", "auto"):
        values = example("owner_and_helper.env", TRAINING_NUM_ROUNDS="2", BULK_TRANSPORT=bulk,
                         BULK_TORRENT_MIN_MIB="0.01")
        outcome = run_cluster(values, tmp_path / bulk)
        assert not [r for r in outcome if isinstance(r, BaseException)], outcome
        disk[bulk] = outcome[0]["torrent_disk_bytes"]
        models[bulk] = final_model(tmp_path / bulk)
    assert len(disk["auto"]) == 2 and min(disk["auto"].values()) > 0, disk
    for key, value in models["torrent"].items():
        assert torch.equal(value, models["auto"][key]), key


def test_disk_use_stays_flat_across_rounds(tmp_path):
    values = example("cnn_cross_offload.env", TRAINING_NUM_ROUNDS="5", TRAINING_NUM_EPOCHS="1",
                     BULK_TRANSPORT="torrent")
    outcome = run_cluster(values, tmp_path)
    assert not [r for r in outcome if isinstance(r, BaseException)], outcome
    by_round = outcome[0]["torrent_disk_bytes_by_round"]
    assert len(by_round) == 5 and by_round[0] > 0
    assert by_round[4] == by_round[0], by_round


def test_activations_over_bittorrent_train_like_grpc(tmp_path):
    results = {}
    for transport in ("grpc", "torrent"):
        values = example("owner_and_helper.env", TRAINING_NUM_ROUNDS="1", BATCH_SIZE="256",
                         ACTIVATION_TRANSPORT=transport)
        outcome = run_cluster(values, tmp_path / transport)
        assert not [r for r in outcome if isinstance(r, BaseException)], outcome
        results[transport] = final_model(tmp_path / transport)
    for key, value in results["grpc"].items():
        assert torch.equal(value, results["torrent"][key]), key
