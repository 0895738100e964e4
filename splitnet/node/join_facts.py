"""What a join announces besides the plan fingerprint, and how a peer's announcement is taken.

Checkpoint rounds (:mod:`splitnet.node.resume`), a secure-aggregation key
(:mod:`splitnet.node.secagg`) and the client's transports (Note: same transports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from splitnet.node.resume import Resume
from splitnet.node.secagg import SecureAggregation
from splitnet.plan.plan import Plan
from splitnet.transport.bulk import uses_swarm

__all__ = ["TRANSPORTS_FACT", "JoinFacts"]

TRANSPORTS_FACT = "transports"
"""The join fact with a client's BULK_TRANSPORT and ACTIVATION_TRANSPORT (Note: same transports)."""


class JoinFacts:
    """What a join announces besides the plan: checkpoint rounds, secagg key, transports."""

    def __init__(self, plan: Plan, resume: Resume, secagg: SecureAggregation | None,
                 transports: Mapping[str, str] | None) -> None:
        self._plan, self._resume, self._secagg = plan, resume, secagg
        self._transports = dict(transports) if transports else None

    def announce(self) -> dict[str, Any]:
        """Return this client's join facts: the plan's, its rounds, key and transports."""
        facts = self._resume.announce(self._plan.facts())
        if self._transports is not None:
            facts[TRANSPORTS_FACT] = dict(self._transports)
        return self._secagg.announce(facts) if self._secagg is not None else facts

    def transport_mismatch(self, me: int, other: int, facts: Mapping[str, Any]) -> str | None:
        """Say how ``other``'s announced transports cannot work with this client's, or None.

        Note: same transports. BULK_TRANSPORT=grpc neither serves nor fetches torrents (but
        for ACTIVATION_TRANSPORT=torrent, whose swarm fetches them too), so it cannot be mixed
        with auto or torrent (which interwork, whatever their thresholds); the
        ACTIVATION_TRANSPORT must be the same on both sides of every hop. A peer that announces
        none (an older version) is not checked here.
        """
        theirs = facts.get(TRANSPORTS_FACT)
        if self._transports is None or not isinstance(theirs, dict):
            return None
        (a, one), (b, two) = sorted([(me, self._transports), (other, theirs)],
                                    key=lambda side: side[0])

        def both(key: str) -> str:
            return f"client {a}: {str(one.get(key))[:40]}, client {b}: {str(two.get(key))[:40]}"

        problems = []
        if (uses_swarm(str(one.get("bulk")), str(one.get("activations")))
                != uses_swarm(str(two.get("bulk")), str(two.get("activations")))):
            problems.append(f"BULK_TRANSPORT ({both('bulk')}): grpc neither serves nor fetches "
                            "torrents (unless ACTIVATION_TRANSPORT=torrent), auto and torrent do")
        if one.get("activations") != two.get("activations"):
            problems.append(f"ACTIVATION_TRANSPORT ({both('activations')})")
        if not problems:
            return None
        return (f"clients {a} and {b} run transports that cannot work together: "
                f"{'; '.join(problems)}; set the same on every client")

    def learn(self, peer: int, facts: dict[str, Any]) -> None:
        """Take ``peer``'s rounds and key (ProtocolError if malformed: the join is refused)."""
        self._resume.learn(peer, facts)
        if self._secagg is not None:
            self._secagg.learn(peer, facts)

