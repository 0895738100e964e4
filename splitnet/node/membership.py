"""Membership: who is in the cluster, with the same plan, and still answering.

A client joins every peer (retrying with backoff until ``JOIN_TIMEOUT``): both sides compare
plan fingerprints and a difference is named key by key; each side learns the ports the other
announced, the run id (``splitnet.node.run``), its verified checkpoint rounds
(``splitnet.node.resume``) and its transports (Note: same transports). A join with a different
plan or transports, or from a number outside the plan, is refused (the joiner stops); it never
stops the members: at start-up a member that was refused this way fails its own join to that
peer with the same difference (Note: a refused joiner is not fatal).
Note: second join. With ``FAILURE_POLICY=wait`` a peer joins a client once per incarnation: a
second join means the peer restarted. The client refuses it as retryable (the joiner backs off
and tries again) and restarts itself (:mod:`splitnet.node.rejoin`), so that every client meets
again in a new incarnation and resumes from the same checkpoint.
Note: drop window. With ``FAILURE_POLICY=drop`` a client that restarts after a loss joins with
a drop window (``drop_window``): a peer that gives no answer at all within it is lost, and the
join raises :class:`~splitnet.errors.PeersLost` naming every such peer; the client then goes on
with the plan without them (:mod:`splitnet.plan.drop`). A peer that answers but refuses (it is
restarting, or already on the plan without the lost ones) is joined again until the join
timeout. Plans derived from the same base plan are siblings: a join between siblings is refused
as retryable (the side that dropped less catches up: a running one restarts), never as a plan
mismatch; a join from a client the plan dropped is refused for good, saying so.
Liveness once joined: :mod:`splitnet.node.liveness`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from splitnet.errors import (
    PeersLost,
    PeerUnavailable,
    PlanMismatch,
    ProtocolError,
    RuntimeFailure,
    SplitnetError,
)
from splitnet.node.join_facts import TRANSPORTS_FACT, JoinFacts
from splitnet.node.resume import ROUNDS_FACT, Resume
from splitnet.node.run import RunId
from splitnet.node.secagg import SecureAggregation
from splitnet.node.state import Failure
from splitnet.plan.plan import Plan, describe_difference
from splitnet.transport.base import Joined, Network, PeerControl

__all__ = ["Membership"]

log = logging.getLogger("splitnet.node")
JOIN_CALL_SECONDS = 5.0
ABORT_REASON_CHARS = 2000
ABORT_SECONDS = 6.0
DIFFERENCE_CHARS = 2000  # a joiner's facts are its own: bound what a refusal repeats
LOGGED_REFUSALS = 256  # distinct (client, fingerprint) refusals logged before the log resets


class _Silent(Exception):
    """A peer gave no answer within the drop window (Note: drop window)."""

    def __init__(self, number: int) -> None:
        super().__init__(f"client {number} gave no answer")
        self.number = number


class Membership:
    """Joins the peers, answers their joins, and tells them when this client ends."""

    def __init__(self, plan: Plan, network: Network, failure: Failure, run: RunId,
                 resume: Resume, *, join_timeout: float,
                 secagg: SecureAggregation | None = None,
                 transports: Mapping[str, str] | None = None) -> None:
        self._plan = plan
        self._resume = resume  # checkpoint rounds travel in the join facts
        self._facts = JoinFacts(plan, resume, secagg, transports)
        self._run = run
        self._network = network
        self._failure = failure
        self._join_timeout = join_timeout
        self._refused: dict[int, PlanMismatch] = {}  # members whose join had a different plan
        self.rejoin = False  # this client restarts (FAILURE_POLICY=wait): Note: second join
        self._joined_by: set[int] = set()  # peers that joined this client (Note: second join)
        self._logged: set[tuple[int, str]] = set()
        self.drop_window: float | None = None  # Note: drop window (FAILURE_POLICY=drop)
        self._joined_all = False

    @property
    def me(self) -> int:
        """Return this client's number."""
        return self._network.me

    # -- join ----------------------------------------------------------------------------------

    async def join_all(self) -> None:
        """Join every peer; raise PlanMismatch or PeerUnavailable naming the first that fails.

        With a drop window, raise PeersLost naming every peer that never answered in it.
        """
        peers = list(self._network.peers.values())
        joins = [self._join(peer) for peer in peers]
        if self.drop_window is None:  # the first failure is raised at once
            outcomes: list[object] = list(await asyncio.gather(*joins))
        else:
            outcomes = list(await asyncio.gather(*joins, return_exceptions=True))
        lost = [peer.number for peer, outcome in zip(peers, outcomes, strict=True)
                if isinstance(outcome, _Silent)]
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, _Silent):
                raise outcome
        if lost:
            raise PeersLost(f"client(s) {', '.join(map(str, lost))} gave no answer within the "
                            f"drop window ({self.drop_window:g}s, FAILURE_POLICY=drop)",
                            tuple(lost))
        self._joined_all = True
        log.info("client %d joined %d peer(s); plan %s", self.me, len(self._network.peers),
                 self._plan.fingerprint)

    async def _join(self, peer: PeerControl) -> None:
        started = time.monotonic()
        deadline = started + self._join_timeout
        delay, answered = 0.05, False
        while True:
            try:
                fingerprint, facts, torrent_port, tensor_port, run_id = await peer.join(
                    self._plan.fingerprint, self._facts.announce(), timeout=JOIN_CALL_SECONDS,
                    torrent_port=self._network.bulk.port,
                    tensor_port=self._network.tensor_port, run_id=self._run.announced())
                break
            except RuntimeFailure as exc:
                if isinstance(exc, PlanMismatch):  # a restarting peer answers ABORTED: retry
                    raise
                if peer.number in self._refused:  # it joined us with another plan, then left
                    raise self._refused[peer.number] from None
                answered = answered or not isinstance(exc, PeerUnavailable)
                window = self.drop_window
                if window is not None and not answered and time.monotonic() - started > window:
                    raise _Silent(peer.number) from None  # Note: drop window
                if time.monotonic() + delay > deadline:
                    raise PeerUnavailable(
                        f"client {peer.number} ({peer.address}) did not answer within "
                        f"JOIN_TIMEOUT={self._join_timeout:g}s: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if fingerprint != self._plan.fingerprint:
            raise PlanMismatch(self._mismatch(peer.number, facts))
        if (why := self._facts.transport_mismatch(self.me, peer.number, facts)) is not None:
            raise PlanMismatch(why)
        self._run.learn(peer.number, run_id)
        self._facts.learn(peer.number, facts)
        self._network.learn(peer.number, torrent_port, tensor_port)

    def answer(self, client: int, fingerprint: str, facts: dict[str, Any], torrent_port: int,
               tensor_port: int, run_id: str = "") -> Joined:
        """Accept a joining peer; refuse it if it is no member, its plan or its run id is wrong.

        A refusal raises (ProtocolError, PlanMismatch) for the joiner and is logged once; this
        client goes on.
        """
        if client in self._plan.dropped:
            error: SplitnetError = PlanMismatch(
                f"client {self.me} refused a join from client {client}: client {client} was "
                "dropped from this run when it stopped answering (FAILURE_POLICY=drop) and "
                "cannot rejoin it; start a new run to train with it")
            self._log_refusal(client, fingerprint, error)
            raise error
        if not self.member(client):
            error = ProtocolError(
                f"client {self.me} refused a join from client {client}: not a peer of the plan "
                f"(clients 1..{self._plan.num_clients}, this one is {self.me})")
            self._log_refusal(client, fingerprint, error)
            raise error
        if fingerprint != self._plan.fingerprint and self._sibling(facts, fingerprint):
            self._refuse_sibling(client, facts)
        why = (self._mismatch(client, facts) if fingerprint != self._plan.fingerprint
               else self._facts.transport_mismatch(self.me, client, facts))
        if why is not None:
            mismatch = PlanMismatch(why)
            self._refused[client] = mismatch
            self._log_refusal(client, fingerprint, mismatch)
            raise mismatch
        try:
            self._run.learn(client, run_id)
            self._facts.learn(client, facts)
        except ProtocolError as exc:
            self._log_refusal(client, fingerprint, exc)
            raise
        self._refused.pop(client, None)
        if self.rejoin and client in self._joined_by:
            self._failure.fail(PeerUnavailable(
                f"client {client} joined again: it restarted; client {self.me} restarts from "
                "its checkpoint to take it back"))
            raise RuntimeFailure(f"client {self.me} restarts to take client {client} back; "
                                 "join again")
        self._joined_by.add(client)
        if client in self._network.peers:
            self._network.learn(client, torrent_port, tensor_port)
        return (self._plan.fingerprint, self._facts.announce(), self._network.bulk.port,
                self._network.tensor_port, self._run.announced())

    def member(self, client: int) -> bool:
        """Return whether ``client`` is another client of the plan (not one it dropped)."""
        return client in self._plan.clients and client != self.me

    def _sibling(self, facts: dict[str, Any], fingerprint: str) -> bool:
        """Return whether the joiner's plan derives from the same base plan as this one's."""
        return facts.get("base", fingerprint) == self._plan.base_fingerprint

    def _refuse_sibling(self, client: int, facts: dict[str, Any]) -> None:
        """Refuse a sibling plan's join as retryable (Note: drop window); follow it if behind."""
        theirs = facts.get("dropped", [])
        shown = repr(theirs)[:200]
        ours = list(self._plan.dropped)
        behind = (isinstance(theirs, list) and set(ours) < {c for c in theirs if type(c) is int})
        if behind and self.rejoin and self._joined_all:
            self._failure.fail(PeerUnavailable(
                f"client {client} goes on without client(s) {shown}; client {self.me} restarts "
                "to follow"))
        raise RuntimeFailure(f"client {self.me} has dropped client(s) {ours or 'none'}, client "
                             f"{client} {shown}: the plans differ until both agree; join again")

    def refused(self, client: int) -> bool:
        """Return whether ``client``'s last join was refused for a different plan."""
        return client in self._refused

    def _log_refusal(self, client: int, fingerprint: str, error: SplitnetError) -> None:
        if (client, fingerprint) in self._logged:
            return
        if len(self._logged) >= LOGGED_REFUSALS:
            self._logged.clear()
        self._logged.add((client, fingerprint))
        log.warning("client %d refused a join from client %d: %s", self.me, client, error)

    def _mismatch(self, other: int, facts: dict[str, Any]) -> str:
        facts = {key: value for key, value in facts.items()
                 if key not in (ROUNDS_FACT, TRANSPORTS_FACT)}
        difference = describe_difference(self._plan.facts(), facts, self.me, other)
        if len(difference) > DIFFERENCE_CHARS:
            difference = difference[:DIFFERENCE_CHARS] + " ..."
        return f"client {other}'s plan differs from client {self.me}'s in: {difference}"

    # -- notices -------------------------------------------------------------------------------

    async def finish_all(self, reason: str) -> None:
        """Tell every peer training is over (one that has gone already is no failure)."""
        await asyncio.gather(*(self._tell(peer, peer.finish, reason)
                               for peer in self._network.peers.values()))

    async def abort_all(self, reason: str) -> None:
        """Tell every peer this client stops because of an error (best effort, bounded)."""
        # One line, so that a multi-line error (a configuration error's list) says what it is.
        one_line = " ".join(line.strip() for line in reason.splitlines() if line.strip())
        one_line = one_line[:ABORT_REASON_CHARS]
        try:
            await asyncio.wait_for(asyncio.gather(*(
                self._tell(peer, peer.abort, one_line)
                for peer in self._network.peers.values())), ABORT_SECONDS)
        except asyncio.TimeoutError:
            log.warning("client %d: peers did not take the abort notice within %gs", self.me,
                        ABORT_SECONDS)

    async def _tell(self, peer: PeerControl, call: Callable[[str], Any], reason: str) -> None:
        try:
            await call(reason)
        except SplitnetError as exc:  # the peer may have stopped already: nothing to tell
            log.debug("client %d could not tell client %d: %s", self.me, peer.number, exc)
