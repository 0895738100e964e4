"""A join between clients whose transports cannot work together (Note: same transports)."""

import pytest

from splitnet.config import load
from splitnet.errors import PlanMismatch
from splitnet.learning.checkpoints import CheckpointStore
from splitnet.node.join_facts import TRANSPORTS_FACT
from splitnet.node.membership import Membership
from splitnet.node.resume import Resume
from splitnet.node.run import RunId
from splitnet.node.state import Failure
from splitnet.plan.plan import build_plan
from splitnet.telemetry.results import ResultsWriter
from splitnet.transport.memory import MemoryHub

from ..conftest import ROOT


@pytest.fixture
def plan():
    return build_plan(load(ROOT / ".env").training)


def member(plan, tmp_path, bulk="auto", activations="direct"):
    store = CheckpointStore(tmp_path, 1, plan.fingerprint, plan.facts(), 2)
    resume = Resume(store, enabled=False, num_rounds=plan.training.num_rounds)
    run = RunId(ResultsWriter(tmp_path), 1, 1, None)
    failure = Failure()
    return Membership(plan, MemoryHub().network(1), failure, run, resume, join_timeout=5,
                      transports={"bulk": bulk, "activations": activations}), failure


def facts(plan, bulk, activations="direct"):
    return {**plan.facts(), TRANSPORTS_FACT: {"bulk": bulk, "activations": activations}}


@pytest.mark.parametrize(("ours", "theirs"), [("auto", "torrent"), ("torrent", "auto"),
                                               ("grpc", "grpc"), ("auto", "auto")])
def test_bulk_modes_that_interwork_join(plan, tmp_path, ours, theirs):
    m, failure = member(plan, tmp_path, bulk=ours)
    m.answer(2, plan.fingerprint, facts(plan, theirs), 0, 0)
    assert failure.error is None and not m.refused(2)


@pytest.mark.parametrize(("ours", "theirs"), [("auto", "grpc"), ("grpc", "torrent")])
def test_grpc_bulk_with_torrents_is_refused_naming_both(plan, tmp_path, ours, theirs):
    m, failure = member(plan, tmp_path, bulk=ours)
    with pytest.raises(PlanMismatch) as refused:
        m.answer(2, plan.fingerprint, facts(plan, theirs), 0, 0)
    text = str(refused.value)
    assert f"BULK_TRANSPORT (client 1: {ours}, client 2: {theirs})" in text
    assert "set the same on every client" in text
    assert failure.error is None and m.refused(2)  # the member goes on


def test_grpc_bulk_with_torrent_activations_fetches_torrents_and_joins(plan, tmp_path):
    m, failure = member(plan, tmp_path, bulk="grpc", activations="torrent")
    m.answer(2, plan.fingerprint, facts(plan, "auto", "torrent"), 0, 0)
    assert failure.error is None and not m.refused(2)


def test_different_activation_transports_are_refused(plan, tmp_path):
    m, _ = member(plan, tmp_path, activations="direct")
    with pytest.raises(PlanMismatch, match=r"ACTIVATION_TRANSPORT \(client 1: direct, "
                                           r"client 2: grpc\)"):
        m.answer(2, plan.fingerprint, facts(plan, "auto", "grpc"), 0, 0)


def test_announced_and_not_a_plan_difference(plan, tmp_path):
    m, _ = member(plan, tmp_path, bulk="grpc")
    assert m._facts.announce()[TRANSPORTS_FACT] == {"bulk": "grpc", "activations": "direct"}
    with pytest.raises(PlanMismatch) as refused:  # a plan difference names plan facts only
        m.answer(2, "0" * 16, {**facts(plan, "auto"), "seed": 7}, 0, 0)
    assert "seed" in str(refused.value) and "transports" not in str(refused.value)


def test_a_peer_announcing_no_transports_is_not_checked(plan, tmp_path):
    m, failure = member(plan, tmp_path, bulk="grpc")
    m.answer(2, plan.fingerprint, plan.facts(), 0, 0)
    assert failure.error is None


def test_an_inline_client_refuses_a_torrent_reference_rather_than_read_empty_bytes():
    import asyncio

    from splitnet.errors import ProtocolError
    from splitnet.transport.bulk import InlineBulk
    from splitnet.transport.messages import Blob

    bulk = InlineBulk(2)
    assert asyncio.run(bulk.into(Blob("model", 3, 1, b"abc", {}))) == b"abc"
    with pytest.raises(ProtocolError, match="client 2 got a torrent reference for a model object "
                                            "of round 3 from client 1.*BULK_TRANSPORT=grpc"):
        asyncio.run(bulk.into(Blob("model", 3, 1, b"", {"torrent": "{}"})))
