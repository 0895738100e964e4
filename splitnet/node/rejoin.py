"""Rejoin after a lost peer (``FAILURE_POLICY=wait``): restart this client's node in-process.

A client whose peer is lost (silent for ``PEER_TIMEOUT``, a transfer to it failed, it sent
Abort, or it joined again: Note: second join, :mod:`splitnet.node.membership`) abandons the
round under way and tells nobody: it closes its node and its network, builds a new node that
resumes from its checkpoints (``RESUME=auto``, :mod:`splitnet.node.resume`), and joins every
peer again, for at most ``REJOIN_TIMEOUT`` seconds since the loss. Every client ends up in a
new incarnation and all resume from the same round. Past the timeout this client fails with a
message naming the loss and saying how to resume. A plan mismatch, a configuration error, a
refused join and a stop by signal are never retried; ``FAILURE_POLICY=abort`` runs one node, as
before.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from splitnet.config.settings import Settings
from splitnet.errors import ConfigError, PlanMismatch, ProtocolError, RuntimeFailure
from splitnet.node.node import Node

__all__ = ["run_rejoining"]

log = logging.getLogger("splitnet.node")

MakeNode = Callable[[Settings], Node]
"""Builds a node (and its network) for the settings of one incarnation."""


def _retryable(node: Node, error: BaseException) -> bool:
    return (isinstance(error, RuntimeFailure) and not isinstance(error, PlanMismatch)
            and not node.stopped)


async def run_rejoining(settings: Settings, make_node: MakeNode,
                        started: Callable[[Node], None] | None = None) -> dict[str, Any]:
    """Run nodes until one ends the run; restart after a lost peer while the policy waits."""
    r = settings.recovery
    current, lost_since, first_loss = settings, None, ""
    previous: Node | None = None
    while True:
        node = make_node(current)
        node.restarts = r.failure_policy == "wait"
        if previous is not None:  # one registry for the whole process: counters go on
            node.metrics = previous.metrics
            node.metrics.rejoins.labels(node.metrics.client).inc()
            node.lost_since = lost_since
        if started is not None:
            started(node)
        run: Awaitable[dict[str, Any]] = node.run()
        try:
            return await run
        except (ConfigError, PlanMismatch, ProtocolError):
            raise
        except RuntimeFailure as exc:
            if not node.restarts or not _retryable(node, exc):
                raise
            now = time.monotonic()
            if node.joined or lost_since is None:  # a new loss (the last rejoin succeeded)
                lost_since, first_loss = now, str(exc).splitlines()[0]
            left = lost_since + r.rejoin_timeout - now
            if left <= 0 or (not node.joined and "JOIN_TIMEOUT" in str(exc)):
                raise RuntimeFailure(
                    f"client {node.me}: the run stopped ({first_loss}) and no rejoin happened "
                    f"within REJOIN_TIMEOUT={r.rejoin_timeout:g}s ({str(exc).splitlines()[0]}). "
                    "Restart the lost client (same CLIENT_NUMBER), then every stopped one: "
                    "with RESUME=auto they go on from the last checkpoint all of them have"
                ) from None
            log.warning("client %d: %s; restarting from its checkpoint, waiting up to %.0fs for "
                        "every peer to rejoin", node.me, str(exc).splitlines()[0], left)
            current, previous = _next_settings(settings, node, left), node


def _next_settings(settings: Settings, node: Node, left: float) -> Settings:
    """Return the next incarnation's settings: join for what is left; the run id to go on."""
    network = dataclasses.replace(settings.network, join_timeout=max(left, 1.0))
    output = settings.output
    if node.me == node.plan.training.server_number and node.results.run_id is not None:
        output = dataclasses.replace(output, run_id=node.results.run_id)  # the same run goes on
    return dataclasses.replace(settings, network=network, output=output)
