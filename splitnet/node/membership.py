"""Membership: who is in the cluster, with the same plan, and still answering.

A client joins every peer (retrying with backoff until ``JOIN_TIMEOUT``): both sides compare
plan fingerprints and a difference is named key by key; each side learns the ports the other
announced, the run id (``splitnet.node.run``) and its verified checkpoint rounds
(``splitnet.node.resume``). A join with a different plan, or from a
number outside the plan, is refused (the joiner stops); it never stops the members: at start-up
a member that was refused this way fails its own join to that peer with the same difference
(Note: a refused joiner is not fatal).
Note: second join. With ``FAILURE_POLICY=wait`` a peer joins a client once per incarnation: a
second join means the peer restarted. The client refuses it as retryable (the joiner backs off
and tries again) and restarts itself (:mod:`splitnet.node.rejoin`), so that every client meets
again in a new incarnation and resumes from the same checkpoint.
Then heartbeats ping every peer; a peer silent for ``PEER_TIMEOUT`` seconds stops this client
with an error naming it (Note: one failure path (node)).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from splitnet.errors import (
    PeerUnavailable,
    PlanMismatch,
    ProtocolError,
    RuntimeFailure,
    SplitnetError,
)
from splitnet.node.resume import ROUNDS_FACT, Resume
from splitnet.node.run import RunId
from splitnet.node.state import Failure
from splitnet.plan.plan import Plan, describe_difference
from splitnet.telemetry.metrics import Metrics
from splitnet.transport.base import Joined, Network, PeerControl

__all__ = ["Membership"]

log = logging.getLogger("splitnet.node")
JOIN_CALL_SECONDS = 5.0
ABORT_REASON_CHARS = 2000
ABORT_SECONDS = 6.0
DIFFERENCE_CHARS = 2000  # a joiner's facts are its own: bound what a refusal repeats
LOGGED_REFUSALS = 256  # distinct (client, fingerprint) refusals logged before the log resets


class Membership:
    """Joins the peers, answers their joins, and watches that they stay alive."""

    def __init__(self, plan: Plan, network: Network, metrics: Metrics, failure: Failure,
                 run: RunId, resume: Resume, *, join_timeout: float,
                 peer_timeout: float) -> None:
        self._plan = plan
        self._resume = resume  # checkpoint rounds travel in the join facts
        self._run = run
        self._network = network
        self._metrics = metrics
        self._failure = failure
        self._join_timeout = join_timeout
        self._peer_timeout = peer_timeout
        self._refused: dict[int, PlanMismatch] = {}  # members whose join had a different plan
        self.rejoin = False  # this client restarts (FAILURE_POLICY=wait): Note: second join
        self._joined_by: set[int] = set()  # peers that joined this client (Note: second join)
        self._logged: set[tuple[int, str]] = set()

    @property
    def me(self) -> int:
        """Return this client's number."""
        return self._network.me

    # -- join ----------------------------------------------------------------------------------

    async def join_all(self) -> None:
        """Join every peer; raise PlanMismatch or PeerUnavailable naming the first that fails."""
        await asyncio.gather(*(self._join(peer) for peer in self._network.peers.values()))
        log.info("client %d joined %d peer(s); plan %s", self.me, len(self._network.peers),
                 self._plan.fingerprint)

    async def _join(self, peer: PeerControl) -> None:
        deadline = time.monotonic() + self._join_timeout
        delay = 0.05
        while True:
            try:
                fingerprint, facts, torrent_port, tensor_port, run_id = await peer.join(
                    self._plan.fingerprint, self._resume.announce(self._plan.facts()),
                    timeout=JOIN_CALL_SECONDS,
                    torrent_port=self._network.bulk.port,
                    tensor_port=self._network.tensor_port, run_id=self._run.announced())
                break
            except RuntimeFailure as exc:
                if isinstance(exc, PlanMismatch):  # a restarting peer answers ABORTED: retry
                    raise
                if peer.number in self._refused:  # it joined us with another plan, then left
                    raise self._refused[peer.number] from None
                if time.monotonic() + delay > deadline:
                    raise PeerUnavailable(
                        f"client {peer.number} ({peer.address}) did not answer within "
                        f"JOIN_TIMEOUT={self._join_timeout:g}s: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if fingerprint != self._plan.fingerprint:
            raise PlanMismatch(self._mismatch(peer.number, facts))
        self._run.learn(peer.number, run_id)
        self._resume.learn(peer.number, facts)
        self._network.learn(peer.number, torrent_port, tensor_port)

    def answer(self, client: int, fingerprint: str, facts: dict[str, Any], torrent_port: int,
               tensor_port: int, run_id: str = "") -> Joined:
        """Accept a joining peer; refuse it if it is no member, its plan or its run id is wrong.

        A refusal raises (ProtocolError, PlanMismatch) for the joiner and is logged once; this
        client goes on.
        """
        if not self.member(client):
            error: SplitnetError = ProtocolError(
                f"client {self.me} refused a join from client {client}: not a peer of the plan "
                f"(clients 1..{self._plan.num_clients}, this one is {self.me})")
            self._log_refusal(client, fingerprint, error)
            raise error
        if fingerprint != self._plan.fingerprint:
            mismatch = PlanMismatch(self._mismatch(client, facts))
            self._refused[client] = mismatch
            self._log_refusal(client, fingerprint, mismatch)
            raise mismatch
        try:
            self._run.learn(client, run_id)
            self._resume.learn(client, facts)
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
        return (self._plan.fingerprint, self._resume.announce(self._plan.facts()),
                self._network.bulk.port,
                self._network.tensor_port, self._run.announced())

    def member(self, client: int) -> bool:
        """Return whether ``client`` is another client of the plan."""
        return 1 <= client <= self._plan.num_clients and client != self.me

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
        facts = {key: value for key, value in facts.items() if key != ROUNDS_FACT}
        difference = describe_difference(self._plan.facts(), facts, self.me, other)
        if len(difference) > DIFFERENCE_CHARS:
            difference = difference[:DIFFERENCE_CHARS] + " ..."
        return f"client {other}'s plan differs from client {self.me}'s in: {difference}"

    # -- liveness ------------------------------------------------------------------------------

    async def heartbeat(self, finished: asyncio.Event) -> None:
        """Ping every peer until ``finished``; fail the client when one is silent too long."""
        timeout = self._peer_timeout
        interval = min(1.0, timeout / 4)
        peers = self._network.peers
        last_ok = {k: time.monotonic() for k in peers}

        async def ping(k: int, peer: PeerControl) -> bool:
            try:
                await peer.ping(timeout=interval)
            except RuntimeFailure:
                self._metrics.error("timeout")
                return False
            last_ok[k] = time.monotonic()
            return True

        m = self._metrics
        while not finished.is_set():
            answered = await asyncio.gather(*(ping(k, p) for k, p in peers.items()))
            m.peers_up.labels(m.client).set(sum(answered))
            self._report_torrent()
            now = time.monotonic()
            for k, seen in last_ok.items():
                if now - seen > timeout and not finished.is_set():
                    self._failure.fail(PeerUnavailable(
                        f"client {k} ({peers[k].address}) stopped answering: no reply for "
                        f"{now - seen:.1f}s (PEER_TIMEOUT={timeout:g}s)"))
                    return
            await asyncio.sleep(interval)

    def _report_torrent(self) -> None:
        stats = self._network.bulk.stats()
        if not stats:  # nothing goes over BitTorrent
            return
        m = self._metrics
        m.torrent_peers.labels(m.client).set(stats["peers"])
        m.torrent_upload_rate.labels(m.client).set(stats["upload_rate"])
        m.torrent_download_rate.labels(m.client).set(stats["download_rate"])
        m.torrent_served.labels(m.client).set(stats["uploaded"])

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
