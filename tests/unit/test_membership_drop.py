"""Joins between a plan and the plans derived from it by drops (Note: drop window)."""

import pytest

from splitnet.config import load
from splitnet.errors import PlanMismatch, RuntimeFailure
from splitnet.learning.checkpoints import CheckpointStore
from splitnet.node.membership import Membership
from splitnet.node.resume import Resume
from splitnet.node.run import RunId
from splitnet.node.state import Failure
from splitnet.plan.drop import without
from splitnet.plan.plan import build_plan
from splitnet.telemetry.results import ResultsWriter
from splitnet.transport.memory import MemoryHub

from ..conftest import ROOT, plan_of


@pytest.fixture
def base():
    """The default .env's plan: five clients, every one a data owner."""
    return build_plan(load(ROOT / ".env").training)


def membership(plan, tmp_path, *, joined=False):
    """Client 1's membership of ``plan``, restarting on a loss; ``joined``: past its joins."""
    store = CheckpointStore(tmp_path, 1, plan.fingerprint, plan.facts(), 2)
    resume = Resume(store, enabled=False, num_rounds=plan.training.num_rounds)
    run = RunId(ResultsWriter(tmp_path), 1, 1, None)
    failure = Failure()
    member = Membership(plan, MemoryHub().network(1), failure, run, resume, join_timeout=5)
    member.rejoin = True
    member._joined_all = joined
    return member, failure


def join(member, plan, client):
    return member.answer(client, plan.fingerprint, plan.facts(), 0, 0)


def test_a_dropped_client_is_refused_for_good_saying_so(base, tmp_path):
    member, failure = membership(without(base, [3]), tmp_path)
    with pytest.raises(PlanMismatch, match="client 3 was dropped from this run"):
        join(member, base, 3)
    assert failure.error is None


def test_a_sibling_plan_is_refused_as_retryable_never_as_a_mismatch(base, tmp_path):
    after = without(base, [3])
    member, failure = membership(after, tmp_path)
    with pytest.raises(RuntimeFailure, match="join again") as refused:
        join(member, base, 2)  # client 2 has not dropped client 3 yet
    assert not isinstance(refused.value, PlanMismatch)
    assert not member.refused(2) and failure.error is None
    member, failure = membership(base, tmp_path / "behind")
    with pytest.raises(RuntimeFailure, match="join again"):
        join(member, after, 2)  # in its own joins still: it drops 3 itself when they end
    assert failure.error is None


def test_a_running_client_that_dropped_less_restarts_to_follow(base, tmp_path):
    member, failure = membership(base, tmp_path, joined=True)
    with pytest.raises(RuntimeFailure, match="join again"):
        join(member, without(base, [3]), 2)
    assert "goes on without client(s) [3]" in str(failure.error)


def test_an_unrelated_plan_is_still_a_mismatch(base, tmp_path):
    member, _ = membership(without(base, [3]), tmp_path)
    other = plan_of(None, NUM_CLIENTS="5", SIMULATION_STAGES_CLIENTS=str(
        [[str(t) for t in base.tasks_of(c)] for c in base.clients]), SEED="7")
    with pytest.raises(PlanMismatch, match="seed"):
        join(member, other, 2)
