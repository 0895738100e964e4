"""run_rejoining's stop message names the timeout that really expired (fake nodes, no network)."""

import asyncio

import pytest

from splitnet.errors import PeerUnavailable, RuntimeFailure
from splitnet.node.rejoin import run_rejoining

from ..conftest import plan_of, settings_of
from .rejoin_fakes import FakeNode


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
