"""AGGREGATION=reduce in whole runs (real gRPC on loopback): central FedAvg's model, fewer bytes.

The cross-offload CNN job (5 clients, partitions held by 2-5 clients) ends with exactly the model
of a central run, over either bulk transport. Eight owners and a ninth client that only
aggregates: the busiest client moves ≤ 2.5 times the model a round with reduce, ≥ 8 times with central.
A holder's malicious chunk is refused while the run goes on; a holder that stops mid-reduce
stops the run with its number named.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
import torch
from safetensors.torch import save as save_safetensors

from splitnet.errors import ProtocolError, SplitnetError
from splitnet.node.reduce import GATHER, SCATTER, Reducer
from splitnet.transport.messages import Blob

from .cluster import run_cluster
from .test_drop import ROUNDS, finished, results, three
from .test_runtime import example, final_model

pytestmark = pytest.mark.integration

NINE = json.dumps([[f"{o}_{s}" for s in range(1, 9)] for o in range(1, 9)] + [[]])
EIGHT_OWNERS = {"NUM_CLIENTS": "9", "SERVER_NUMBER": "9", "SIMULATION_STAGES_CLIENTS": NINE,
                "TRAINING_NUM_ROUNDS": "2", "TRAINING_NUM_EPOCHS": "1"}


def _ok(outcome):
    assert not [r for r in outcome if isinstance(r, BaseException)], outcome
    [summary] = [r for r in outcome if "rounds" in r]  # the aggregator's
    return summary


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("bulk", ["grpc", "torrent"])
def test_reduce_ends_with_exactly_the_central_model(tmp_path, bulk):
    values = example("cnn_cross_offload.env", TRAINING_NUM_ROUNDS="2", BULK_TRANSPORT=bulk)
    central = _ok(run_cluster(values, tmp_path / "central"))
    reduced = _ok(run_cluster({**values, "AGGREGATION": "reduce"}, tmp_path / "reduce"))
    assert (central["aggregation"], reduced["aggregation"]) == ("central", "reduce")
    _same(final_model(tmp_path / "central"), final_model(tmp_path / "reduce"))
    assert reduced["test_accuracy"] == central["test_accuracy"]


def test_at_eight_owners_the_busiest_client_moves_a_fraction_of_centrals_bytes(tmp_path):
    values = example("cnn_all_local.env", **EIGHT_OWNERS)
    central = _ok(run_cluster(values, tmp_path / "central"))
    reduced = _ok(run_cluster({**values, "AGGREGATION": "reduce"}, tmp_path / "reduce"))
    _same(final_model(tmp_path / "central"), final_model(tmp_path / "reduce"))  # merge path:
    # the aggregator holds no partition, it assembles every one from its holders' chunks
    size = len(save_safetensors(final_model(tmp_path / "central")))  # S
    last = str(central["rounds"])  # round 1 also carries the initial model
    busiest_central = central["busiest_client_bulk_bytes"][last] / size
    busiest_reduce = reduced["busiest_client_bulk_bytes"][last] / size
    assert busiest_central >= 8.0, busiest_central
    assert busiest_reduce <= 2.5, busiest_reduce


def test_a_malicious_chunk_is_refused_and_the_run_goes_on(tmp_path, monkeypatch):
    values = example("cnn_cross_offload.env", TRAINING_NUM_ROUNDS="2")
    refusals: list[str] = []
    send = Reducer._send

    async def evil_first(self, kind, round_, payloads):
        if self.me == 2 and kind == SCATTER and round_ == 0:
            for peer, tensors in payloads.items():
                nan = {k: torch.full_like(t, float("nan")) for k, t in tensors.items()}
                for blob in (Blob(kind, round_, 2, save_safetensors(nan)),
                             Blob(kind, round_ + 1, 2, save_safetensors(dict(tensors))),
                             Blob(GATHER, round_, 2, b"not safetensors")):
                    try:
                        await self._routing.push(peer, blob, len(blob.data))
                    except SplitnetError as exc:
                        refusals.append(f"{type(exc).__name__}: {exc}")
        await send(self, kind, round_, payloads)

    central = _ok(run_cluster(values, tmp_path / "central"))
    monkeypatch.setattr(Reducer, "_send", evil_first)
    reduced = _ok(run_cluster({**values, "AGGREGATION": "reduce"}, tmp_path / "reduce"))
    peers = 4  # client 2 shares a partition with every other client in this plan
    assert len(refusals) == 3 * peers, refusals
    assert all(text.startswith(ProtocolError.__name__) for text in refusals), refusals
    assert sum("non-finite" in t for t in refusals) == peers
    assert sum("reduces round 0" in t for t in refusals) == peers
    assert sum("not safetensors" in t for t in refusals) == peers
    _same(final_model(tmp_path / "central"), final_model(tmp_path / "reduce"))
    assert reduced["test_accuracy"] == central["test_accuracy"]


def test_a_holder_that_stops_mid_reduce_stops_the_run_naming_it(tmp_path, monkeypatch):
    values = example("cnn_cross_offload.env", TRAINING_NUM_ROUNDS="3", AGGREGATION="reduce",
                     FAILURE_POLICY="abort", TORRENT_TIMEOUT="2", PEER_TIMEOUT="3")
    send = Reducer._send

    async def hangs(self, kind, round_, payloads):
        if self.me == 3 and kind == GATHER and round_ == 1:  # sent its scatter, then froze
            await asyncio.Event().wait()
        await send(self, kind, round_, payloads)

    monkeypatch.setattr(Reducer, "_send", hangs)
    outcome = run_cluster(values, tmp_path)
    failures = [r for r in outcome if isinstance(r, BaseException)]
    assert len(failures) == len(outcome), outcome  # a clear stop, everywhere
    text = "\n".join(map(str, failures))
    assert "no all-gather chunk of round 1 from client(s) 3 within 5s" in text, text


def test_a_client_killed_in_the_reduce_is_dropped_and_the_run_ends(tmp_path):
    """FAILURE_POLICY=drop with real processes: client 3 is killed once its round-1 reduce began."""
    with three(tmp_path, AGGREGATION="reduce") as clients:  # Note: room to kill (10 rounds)
        proc, lines, _ = clients[3]
        deadline = time.monotonic() + 120
        while not any("reduces round 1's" in line for line in list(lines)):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)[-2000:]
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        output = finished(clients, {1: 0, 2: 0, 3: -9})
    assert "dropping client(s) 3:" in output[1] and "dropping client(s) 3:" in output[2]
    summary = results(tmp_path)
    assert summary["aggregation"] == "reduce"
    [drop] = summary["dropped"]
    assert drop["dropped"] == [3] and 2 <= drop["from_round"] <= ROUNDS
    assert "Traceback" not in "".join(output.values())


def test_reduce_with_secure_aggregation_over_torrents_equals_central_secure_aggregation(tmp_path):
    values = example("cnn_cross_offload.env", TRAINING_NUM_ROUNDS="2", BULK_TRANSPORT="torrent",
                     SECURE_AGGREGATION="on")
    central = _ok(run_cluster(values, tmp_path / "central"))
    reduced = _ok(run_cluster({**values, "AGGREGATION": "reduce"}, tmp_path / "reduce"))
    assert reduced["secure_aggregation"] is True and reduced["aggregation"] == "reduce"
    _same(final_model(tmp_path / "central"), final_model(tmp_path / "reduce"))
    assert reduced["test_accuracy"] == central["test_accuracy"]
