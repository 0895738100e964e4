"""run_rejoining's stop message names the timeout that really expired (fake nodes, no network)."""

import asyncio
from types import SimpleNamespace

import pytest

from splitnet.errors import PeerUnavailable, RuntimeFailure
from splitnet.node.rejoin import run_rejoining

from ..conftest import plan_of, settings_of


class FakeNode:
    """Just what run_rejoining reads of a node; ``run`` raises ``error``."""

    def __init__(self, plan, error: Exception, joined: bool) -> None:
        self.me, self.plan, self.joined, self.stopped = 2, plan, joined, False
        self.results = SimpleNamespace(run_id=None)
        self.metrics = SimpleNamespace(client="2", rejoins=SimpleNamespace(
            labels=lambda *_: SimpleNamespace(inc=lambda: None)))
        self.error = error

    async def run(self):
        raise self.error


def _stop_message(errors: list[tuple[Exception, bool]]) -> str:
    settings = settings_of("cnn_all_local.env", JOIN_TIMEOUT="2", REJOIN_TIMEOUT="300")
    plan = plan_of("cnn_all_local.env")
    nodes = iter(FakeNode(plan, error, joined) for error, joined in errors)
    with pytest.raises(RuntimeFailure) as caught:
        asyncio.run(run_rejoining(plan, settings, lambda _plan, _settings: next(nodes)))
    return str(caught.value)


def test_a_client_that_never_joined_at_start_names_join_timeout_not_rejoin():
    message = _stop_message([(PeerUnavailable(
        "client 1 (127.0.0.1:9) did not answer within JOIN_TIMEOUT=2s: refused"), False)])
    assert "joined no peer within JOIN_TIMEOUT=2s" in message
    assert "REJOIN_TIMEOUT" not in message and "no rejoin happened" not in message


def test_a_lost_peer_that_never_rejoins_names_rejoin_timeout():
    message = _stop_message([
        (PeerUnavailable("client 1 was silent for PEER_TIMEOUT=60s"), True),
        (PeerUnavailable("client 1 (127.0.0.1:9) did not answer within JOIN_TIMEOUT=300s: x"),
         False)])
    assert "no rejoin happened within REJOIN_TIMEOUT=300s" in message
    assert "client 1 was silent" in message
