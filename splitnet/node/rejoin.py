"""Rejoin after a lost peer (``FAILURE_POLICY=wait``): restart this client's node in-process.

A client whose peer is lost (silent for ``PEER_TIMEOUT``, a transfer to it failed, it sent
Abort, or it joined again: Note: second join, :mod:`splitnet.node.membership`) abandons the
round under way and tells nobody: it closes its node and its network, builds a new node that
resumes from its checkpoints (``RESUME=auto``, :mod:`splitnet.node.resume`), and joins every
peer again, for at most ``REJOIN_TIMEOUT`` seconds since the loss. Every client ends up in a
new incarnation and all resume from the same round. Past the timeout this client fails with a
message naming the loss and saying how to resume. A plan mismatch, a configuration error, a
refused join and a stop by signal are never retried; ``FAILURE_POLICY=abort`` runs one node, as
before. A listener port in use is a configuration error at start and retried, once a second,
only by a restarted incarnation (Note: bind failures, :mod:`splitnet.transport.listen`).

``FAILURE_POLICY=drop`` restarts the same way, but the new incarnation joins with a drop window
(Note: drop window, :mod:`splitnet.node.membership`): the peers that give no answer within it
are dropped, and the next incarnation runs the plan without them (:mod:`splitnet.plan.drop`),
resuming from the checkpoints of the plan before. Every survivor derives the same plan from the
same lost clients; a survivor that saw otherwise meets a sibling plan at join and catches up.
Each drop is logged and goes into the summary (``dropped``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from splitnet.config.settings import Settings
from splitnet.errors import (
    BindFailed,
    ConfigError,
    PeersLost,
    PlanMismatch,
    ProtocolError,
    RuntimeFailure,
)
from splitnet.node.node import Node
from splitnet.plan.drop import has_quorum, moved_tasks, without
from splitnet.plan.plan import Plan

__all__ = ["BIND_RETRY_SECONDS", "MIN_DROP_WINDOW", "drop_window", "run_rejoining"]

log = logging.getLogger("splitnet.node")

MakeNode = Callable[[Plan, Settings], Node]
"""Builds a node (and its network) for the plan and settings of one incarnation."""
BIND_RETRY_SECONDS = 1.0
"""How long a restarted incarnation waits before binding a port in use again."""
MIN_DROP_WINDOW = 10.0
"""Seconds a restarted survivor waits at least for its peers to answer before dropping them."""


def drop_window(settings: Settings) -> float:
    """Return how long a restarted survivor waits for a silent peer before dropping it."""
    return max(2 * settings.network.peer_timeout, MIN_DROP_WINDOW)


def _retryable(node: Node, error: BaseException) -> bool:
    return (isinstance(error, RuntimeFailure) and not isinstance(error, PlanMismatch)
            and not node.stopped)


async def run_rejoining(plan: Plan, settings: Settings, make_node: MakeNode,
                        started: Callable[[Node], None] | None = None) -> dict[str, Any]:
    """Run nodes until one ends the run; restart after a lost peer unless the policy aborts."""
    r = settings.recovery
    current, lost_since, first_loss = settings, None, ""
    previous: Node | None = None
    drops: list[dict[str, Any]] = []
    binding_again = False
    while True:
        node = make_node(plan, current)
        node.restarts = r.failure_policy in ("wait", "drop")
        node.drops = drops
        if previous is not None:  # one registry for the whole process: counters go on
            node.metrics = previous.metrics
            if not binding_again:  # a rejoin, not another try at a port in use
                node.metrics.rejoins.labels(node.metrics.client).inc()
            node.lost_since = lost_since
            if r.failure_policy == "drop":
                node.drop_window = drop_window(settings)
        if started is not None:
            started(node)
        run: Awaitable[dict[str, Any]] = node.run()
        binding_again = False
        try:
            return await run
        except (ConfigError, PlanMismatch, ProtocolError):
            raise
        except PeersLost as exc:
            plan = _drop(node, plan, exc)
            drops.append(moved_tasks(node.plan, plan))
            since = time.monotonic() if lost_since is None else lost_since
            left = since + r.rejoin_timeout - time.monotonic()
            current, previous = _next_settings(settings, node, left), node
        except BindFailed as exc:  # Note: bind failures (transport/listen.py)
            if previous is None:  # another process holds the port: a configuration error
                raise exc.as_config_error() from None
            if not node.restarts or node.stopped:
                raise
            left = current.network.join_timeout - BIND_RETRY_SECONDS  # what the rejoin has left
            if left <= 0:
                raise
            log.warning("client %d: %s; trying again in %gs", node.me, exc, BIND_RETRY_SECONDS)
            await asyncio.sleep(BIND_RETRY_SECONDS)  # its predecessor may hold it a moment
            current, binding_again = _next_settings(settings, node, left), True
        except RuntimeFailure as exc:
            if not node.restarts or not _retryable(node, exc):
                raise
            now = time.monotonic()
            if node.joined or lost_since is None:  # a new loss (the last rejoin succeeded)
                lost_since, first_loss = now, str(exc).splitlines()[0]
            left = lost_since + r.rejoin_timeout - now
            joined_none = not node.joined and "JOIN_TIMEOUT" in str(exc)
            if previous is None and joined_none:
                raise RuntimeFailure(_never_joined(node.me, settings, exc)) from None
            if left <= 0 or joined_none:
                raise RuntimeFailure(
                    f"client {node.me}: the run stopped ({first_loss}) and no rejoin happened "
                    f"within REJOIN_TIMEOUT={r.rejoin_timeout:g}s ({str(exc).splitlines()[0]}). "
                    "Restart the lost client (same CLIENT_NUMBER), then every stopped one: "
                    "with RESUME=auto they go on from the last checkpoint all of them have"
                ) from None
            log.warning("client %d: %s; restarting from its checkpoint, waiting up to %.0fs for "
                        "every peer to rejoin", node.me, str(exc).splitlines()[0], left)
            current, previous = _next_settings(settings, node, left), node


def _never_joined(me: int, settings: Settings, exc: BaseException) -> str:
    """Return the stop message of a process that joined none of its peers.

    Note: start is not a rejoin. This process's first join is bounded by ``JOIN_TIMEOUT``; when
    it expires this process has lost nothing, so ``REJOIN_TIMEOUT`` never started: the message
    names the timeout that did expire (a restarted client's peers may have stopped meanwhile).
    """
    return (f"client {me}: this process joined no peer within JOIN_TIMEOUT="
            f"{settings.network.join_timeout:g}s ({str(exc).splitlines()[0]}). Start (or "
            "restart) every client with the same plan, check PEERS and that each peer is "
            "reachable, or raise JOIN_TIMEOUT")


def _drop(node: Node, plan: Plan, lost: PeersLost) -> Plan:
    """Return the plan without the lost peers, logged (RuntimeFailure if none can go on)."""
    if not has_quorum(plan, lost.clients):  # Note: quorum (plan/drop.py)
        left = [c for c in plan.clients if c not in lost.clients]
        raise RuntimeFailure(
            f"client {node.me}: {lost}; clients {', '.join(map(str, left))} are not a majority "
            f"of the run's {len(plan.clients)} clients, so this side stops rather than split "
            "the run; the others go on if they are a majority")
    try:
        after = without(plan, lost.clients)
    except ValueError as exc:
        raise RuntimeFailure(f"client {node.me}: {lost}; the run cannot go on: {exc}") from None
    change = moved_tasks(plan, after)
    moved = "; ".join(f"owner {m['owner']}'s partition {m['partition']} → client {m['to']}"
                      for m in change["moved"]) or "no partition moved"
    log.warning("client %d: %s; dropping client(s) %s: owner(s) %s "
                "leave; %s; aggregator client %d; plan %s", node.me, lost,
                ", ".join(map(str, change["dropped"])),
                ", ".join(map(str, change["owners_left"])) or "none", moved,
                change["aggregator"], after.fingerprint)
    return after


def _next_settings(settings: Settings, node: Node, left: float) -> Settings:
    """Return the next incarnation's settings: join for what is left; the run id to go on."""
    network = dataclasses.replace(settings.network, join_timeout=max(left, 1.0))
    output = settings.output
    if node.me == node.plan.training.server_number and node.results.run_id is not None:
        output = dataclasses.replace(output, run_id=node.results.run_id)  # the same run goes on
    return dataclasses.replace(settings, network=network, output=output)
