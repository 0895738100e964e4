"""AGGREGATION=reduce: what one holder accepts, and whole in-memory runs against central FedAvg."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch
from safetensors.torch import save as save_safetensors

from splitnet.config import load
from splitnet.errors import ConfigError, PeerUnavailable, ProtocolError
from splitnet.learning.data import dataset_spec
from splitnet.learning.models import build_partitions
from splitnet.node.reduce import GATHER, SCATTER, Reducer
from splitnet.node.state import Failure
from splitnet.plan.plan import build_plan
from splitnet.runtime import Replicas
from splitnet.transport.messages import Blob

from .test_round import SMALL, build, errors, example, final_model, run


class _Routing:
    """Hands payloads over as they are (inline blobs) and records pushes."""

    def __init__(self) -> None:
        self.pushed: list[tuple[int, Blob]] = []

    async def take(self, blob: Blob) -> bytes:
        return blob.data

    def bulk_out(self, kind: str, round_: int, data: bytes) -> Blob:
        return Blob(kind, round_, 2, data)

    async def push(self, peer: int, blob: Blob, size: int) -> None:
        self.pushed.append((peer, blob))


def _reducer(me: int = 2, timeout: float = 5.0) -> tuple[Reducer, _Routing, Failure]:
    settings = load(values={**SMALL, "AGGREGATION": "reduce", "CLIENT_NUMBER": str(me)})
    plan = build_plan(settings.training)
    s = plan.training
    parts = build_partitions(s.model, dataset_spec(s), s.seed, s.bert_model, False)
    routing, failure = _Routing(), Failure()
    replicas = Replicas(plan, me, parts, s.optimizer, s.learning_rate)
    return Reducer(plan, me, replicas, routing, failure, lambda: 0,  # type: ignore[arg-type]
                   timeout=timeout), routing, failure


def _chunk(reducer: Reducer, kind: str, sender: int, **changes: Any) -> Blob:
    tensors = {key: torch.ones(length, dtype=getattr(torch, dtype.removeprefix("torch.")))
               for key, (length, dtype) in reducer.expected(kind, sender).items()}
    tensors.update(changes.pop("tensors", {}))
    for key in changes.pop("drop", ()):
        del tensors[key]
    blob = Blob(kind, 0, sender, save_safetensors(tensors))
    for name, value in changes.pop("blob", {}).items():
        setattr(blob, name, value)
    assert not changes
    return blob


def test_the_holders_layout_of_the_three_client_plan():
    reducer, _, _ = _reducer(2)
    assert reducer.holders[1] == [1, 2, 3] and reducer.peers() == [1, 3]
    assert reducer.expected(SCATTER, 3) and all(k.count("/") >= 2 for k in
                                                reducer.expected(SCATTER, 3))


def _one_key(reducer: Reducer, kind: str = SCATTER, sender: int = 3) -> str:
    return next(k for k, (n, d) in reducer.expected(kind, sender).items()
                if n > 1 and "float" in d)


@pytest.mark.parametrize("what, make, message", [
    ("a round not reduced now", lambda r: _chunk(r, SCATTER, 3, blob={"round": 1}), "reduces round 0"),
    ("a sender holding nothing shared", lambda r: _chunk(r, SCATTER, 3, blob={"sender": 7}),
     "holds no partition"),
    ("the receiver itself", lambda r: _chunk(r, GATHER, 3, blob={"sender": 2}), "holds no partition"),
    ("an unknown kind", lambda r: _chunk(r, SCATTER, 3, blob={"kind": "scatter"}), "unknown kind"),
    ("a missing key", lambda r: _chunk(r, SCATTER, 3, drop=[_one_key(r)]), "lacks"),
    ("an extra key", lambda r: _chunk(r, SCATTER, 3, tensors={"9/1/x": torch.ones(1)}),
     "extra"),
    ("a wrong length", lambda r: _chunk(r, SCATTER, 3, tensors={_one_key(r): torch.ones(1)}),
     r"expected \("),
    ("a wrong dtype", lambda r: _chunk(r, GATHER, 3, tensors={
        _one_key(r, GATHER): torch.ones(r.expected(GATHER, 3)[_one_key(r, GATHER)][0],
                                        dtype=torch.float64)}), "float64"),
    ("a 2-D slice", lambda r: _chunk(r, SCATTER, 3, tensors={
        _one_key(r): torch.ones(1, r.expected(SCATTER, 3)[_one_key(r)][0])}), r"expected \("),
    ("a NaN", lambda r: _chunk(r, SCATTER, 3, tensors={
        _one_key(r): torch.full((r.expected(SCATTER, 3)[_one_key(r)][0],), float("nan"))}),
     "non-finite"),
    ("bytes that are not safetensors", lambda r: _chunk(r, SCATTER, 3, blob={"data": b"\x00" * 64}),
     "not safetensors"),
])
def test_a_malicious_chunk_is_refused_and_changes_nothing(what, make, message):
    reducer, _, failure = _reducer(2)
    with pytest.raises(ProtocolError, match=message):
        asyncio.run(reducer.take(make(reducer)))
    assert not reducer._inbox and failure.error is None, what
    asyncio.run(reducer.take(_chunk(reducer, SCATTER, 3)))  # the honest one still goes in
    assert list(reducer._inbox) == [(SCATTER, 0, 3)]


def test_a_second_chunk_from_the_same_holder_is_refused():
    reducer, _, _ = _reducer(2)
    asyncio.run(reducer.take(_chunk(reducer, SCATTER, 3)))
    with pytest.raises(ProtocolError, match="already"):
        asyncio.run(reducer.take(_chunk(reducer, SCATTER, 3)))


def test_sample_counts_must_name_every_owner_with_a_whole_number():
    reducer, routing, _ = _reducer(2)
    for weights in ({1: 10, 2: 10}, {1: 10, 2: 10, 3: 0}, {1: 10, 2: 10, 3: 1.5},
                    {1: 1, 2: 1, 3: 1, 4: 1}):
        with pytest.raises(ProtocolError, match="every owner"):
            asyncio.run(reducer.reduce(0, weights))  # type: ignore[arg-type]
    assert not routing.pushed


def test_a_holder_waiting_for_a_silent_peer_names_it_and_fails_its_node():
    reducer, routing, failure = _reducer(2, timeout=0.5)

    async def main() -> None:
        await reducer.take(_chunk(reducer, SCATTER, 3))  # client 1 stays silent
        await reducer.reduce(0, {1: 5, 2: 5, 3: 5})

    with pytest.raises(PeerUnavailable, match=r"reduce-scatter chunk of round 0 from "
                                              r"client\(s\) 1 within 0.5s"):
        asyncio.run(main())
    assert isinstance(failure.error, PeerUnavailable)
    assert sorted(peer for peer, blob in routing.pushed if blob.kind == SCATTER) == [1, 3]


@pytest.mark.parametrize("name, overrides", [
    ("three", SMALL),
    ("cross_offload", example("cnn_cross_offload.env", TRAINING_NUM_ROUNDS="2")),
])
def test_reduce_ends_with_exactly_central_fedavgs_model(tmp_path, name, overrides):
    central, _ = build(dict(overrides), tmp_path / "central")
    reduced, _ = build({**overrides, "AGGREGATION": "reduce"}, tmp_path / "reduce")
    results = run(central) + run(reduced)
    assert not errors(results), results
    n = len(central)
    assert results[0]["aggregation"] == "central" and results[n]["aggregation"] == "reduce"
    a, b = final_model(tmp_path / "central"), final_model(tmp_path / "reduce")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert results[0]["test_accuracy"] == results[n]["test_accuracy"]


def test_reduce_with_secure_aggregation_ends_with_exactly_central_secure_aggregations_model(
        tmp_path, monkeypatch):
    secure = {**SMALL, "SECURE_AGGREGATION": "on"}
    seen: list[str] = []
    take = Reducer.take

    async def recording(self, blob):  # what travels between holders: masked sums only
        await take(self, blob)
        if blob.kind == SCATTER:
            seen.extend(self._inbox[(blob.kind, blob.round, blob.sender)])
            assert all(t.dtype == torch.int64 for t in
                       self._inbox[(blob.kind, blob.round, blob.sender)].values())

    monkeypatch.setattr(Reducer, "take", recording)
    central, _ = build(dict(secure), tmp_path / "central")
    reduced, _ = build({**secure, "AGGREGATION": "reduce"}, tmp_path / "reduce")
    results = run(central) + run(reduced)
    assert not errors(results), results
    assert results[3]["aggregation"] == "reduce" and results[3]["secure_aggregation"] is True
    assert seen and all(key.count("/") == 1 for key in seen)  # partition/name: never a replica
    a, b = final_model(tmp_path / "central"), final_model(tmp_path / "reduce")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_reduce_is_in_the_plan_summary_and_fingerprint_central_keeps_its_fingerprint():
    central = build_plan(load(values=SMALL).training)
    explicit = build_plan(load(values={**SMALL, "AGGREGATION": "central"}).training)
    reduced = build_plan(load(values={**SMALL, "AGGREGATION": "reduce"}).training)
    assert "AGGREGATION=reduce" in reduced.summary() and "AGGREGATION" not in central.summary()
    assert central.fingerprint == explicit.fingerprint != reduced.fingerprint


def test_an_unknown_aggregation_is_named():
    with pytest.raises(ConfigError, match="AGGREGATION"):
        load(values={**SMALL, "AGGREGATION": "tree"})
