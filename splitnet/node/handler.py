"""What this client does when a peer calls it: a thin :class:`PeerHandler` over the node's parts.

The transport's servicer turns wire frames into these calls and maps the domain errors raised
here to status codes (``splitnet.transport.status``); the parts hold the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitnet.errors import ProtocolError, RuntimeFailure
from splitnet.node.aggregator import Aggregator
from splitnet.node.membership import Membership
from splitnet.node.reduce import GATHER, SCATTER
from splitnet.node.rounds import Rounds
from splitnet.node.routing import Routing
from splitnet.node.state import Failure
from splitnet.runtime import Interpreter
from splitnet.transport.base import Joined
from splitnet.transport.messages import Blob, TaskMessage

__all__ = ["NodeHandler"]


class NodeHandler:
    """Serves peers' calls by delegating each to the part that owns it."""

    def __init__(self, membership: Membership, routing: Routing, interpreter: Interpreter,
                 rounds: Rounds, aggregator: Aggregator | None, failure: Failure) -> None:
        self._membership = membership
        self._routing = routing
        self._interpreter = interpreter
        self._rounds = rounds
        self._aggregator = aggregator
        self._failure = failure

    async def join(self, client: int, fingerprint: str, facts: dict[str, Any],
                   torrent_port: int, tensor_port: int, run_id: str) -> Joined:
        """Accept a joining peer; refuse it if it is no member, its plan or run id is wrong."""
        return self._membership.answer(client, fingerprint, facts, torrent_port, tensor_port,
                                       run_id)

    async def ping(self, client: int) -> int:
        """Answer a liveness check with the current round."""
        return max(self._interpreter.round, 0)

    async def tensor(self, msg: TaskMessage) -> None:
        """Queue a peer's activation or gradient (ProtocolError if it does not fit the plan)."""
        await self._routing.receive(msg, self._interpreter.accept)

    async def round_done(self, client: int, round_: int, report_json: str) -> None:
        """Take a client's round report (aggregator only; ProtocolError if it is malformed)."""
        if self._aggregator is None:
            raise RuntimeFailure(f"client {self._routing.me} is not the aggregator")
        if client == self._routing.me:
            raise ProtocolError(f"a peer's round report claims to come from client {client}, "
                                "the aggregator itself")
        self._aggregator.round_done(client, round_, report_json)

    async def get_states(self, client: int, round_: int,
                         weights: Mapping[int, int] | None = None) -> Blob:
        """Return this client's replica states and counters to the aggregator, and no one else.

        ProtocolError for another client: replica weights are an owner's to share with the
        aggregator only (with TLS the caller's number is its certificate's).
        """
        if client != self._rounds.server:
            raise ProtocolError(f"client {client} asked for client {self._routing.me}'s replica "
                                f"states; only the aggregator (client {self._rounds.server}) "
                                "is given them")
        return await self._rounds.states(round_, weights)

    async def put_model(self, blob: Blob) -> None:
        """Load averaged partitions (or the initial model), or take a holder's reduce chunk."""
        if blob.kind in (SCATTER, GATHER):
            if self._rounds.reducer is None:
                raise ProtocolError(f"client {self._routing.me} refused a {blob.kind!r} chunk "
                                    f"from client {blob.sender}: AGGREGATION=central here")
            await self._rounds.reducer.take(blob)
            return
        await self._rounds.put_model(blob)

    async def finish(self, client: int, reason: str) -> None:
        """End this client: the aggregator says training is over (ProtocolError from another)."""
        self._rounds.finish(client)

    async def abort(self, client: int, reason: str) -> None:
        """Stop too, naming the peer that stopped because of an error.

        A client whose join was refused (another plan) is not part of this run: its abort is
        refused (Note: a refused joiner is not fatal).
        """
        if not self._membership.member(client):
            raise ProtocolError(f"client {self._routing.me} refused an abort from client "
                                f"{client}: not a peer of the plan")
        if self._membership.refused(client):
            raise ProtocolError(f"client {self._routing.me} refused an abort from client "
                                f"{client}, whose join was refused for a different plan")
        self._failure.fail(RuntimeFailure(f"client {client} stopped: {reason}"))
