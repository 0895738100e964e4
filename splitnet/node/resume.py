"""Resuming a run from round checkpoints (``RESUME=auto``): which round, and what to put back.

Before it serves its peers a client verifies its own checkpoints (:meth:`Resume.scan`: size,
sha256, plan; a checkpoint of another plan stops it with
:class:`~splitnet.errors.PlanMismatch`). It announces the rounds that verify in every join, both
ways (the ``checkpoint_rounds`` entry of the join facts, validated on receipt). After the joins
every client knows every other's rounds and takes R, the highest round every client has
(:meth:`Resume.agree`; none: round 0, as without checkpoints). All clients see the same
announcements, so all take the same R without another message.

Resuming after R: the aggregator pushes its checkpoint's averaged model instead of the initial
one and goes on in the checkpoint's run (Note: run of a resume, :mod:`splitnet.node.checkpointing`),
its rows up to R rewritten into ``metrics.csv``; every client restores its optimizer states, and
each owner's latest batch (admission, feeder); training goes on at round R+1. Batch order depends
only on the seed, the owner and the round, so the resumed run trains exactly as the uninterrupted
one. ``RESUME=never`` announces nothing: the run starts at round 0.

Note: aggregator hand-over. After a drop (:mod:`splitnet.plan.drop`) the aggregator may be a
client whose own checkpoints hold no averaged model: it reads the model and the result rows of
round R from a dropped client's checkpoint in its ``CHECKPOINT_DIR`` (``model_from``; the
folder is shared when clients run on one host, or on shared storage), and announces only the
rounds it has a model for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from splitnet.errors import ConfigError, PlanMismatch, ProtocolError, Violation
from splitnet.learning.checkpoints import Checkpoint, CheckpointStore
from splitnet.node.checkpointing import AVERAGED

__all__ = ["ROUNDS_FACT", "MAX_ANNOUNCED", "Resume"]

log = logging.getLogger("splitnet.node")

ROUNDS_FACT = "checkpoint_rounds"
"""The join facts' entry with the sender's verified checkpoint rounds (not a plan fact)."""
MAX_ANNOUNCED = 64
"""At most this many of a client's newest checkpoint rounds are verified and announced."""


class Resume:
    """Client ``store.client``'s checkpoint rounds, its peers', and the round agreed on."""

    def __init__(self, store: CheckpointStore, *, enabled: bool, num_rounds: int,
                 model_from: tuple[CheckpointStore, ...] = ()) -> None:
        self.store = store
        self._model_from = model_from  # Note: aggregator hand-over
        self._models: dict[int, CheckpointStore] = {}  # round -> the store with its model
        self.enabled = enabled
        self._num_rounds = num_rounds
        self.own: list[int] = []  # verified, oldest first
        self.run_id: str | None = None  # the run of the newest verified checkpoint
        self._peers: dict[int, frozenset[int]] = {}
        self.round: int | None = None  # R, once agreed (None: start at round 0)
        self.checkpoint: Checkpoint | None = None
        self.model_checkpoint: Checkpoint | None = None  # the one holding R's averaged model

    def scan(self) -> None:
        """Verify this client's checkpoints (PlanMismatch if one is of another plan)."""
        if not self.enabled:
            return
        without_model = []
        for round_ in self.store.rounds()[-MAX_ANNOUNCED:]:
            if not 0 <= round_ < self._num_rounds:
                continue
            try:
                checkpoint = self.store.read(round_)
            except ValueError as exc:
                log.warning("client %d: checkpoint of round %d skipped: %s", self.store.client,
                            round_, exc)
                continue
            if self._model_from and not self._has_model(round_, checkpoint):
                without_model.append(round_)
                continue
            self.own.append(round_)
            run_id = checkpoint.extra.get("run_id")
            self.run_id = run_id if isinstance(run_id, str) else None
        if without_model and not self.own:  # Note: aggregator hand-over
            dropped = ", ".join(str(store.client) for store in self._model_from)
            raise ConfigError(Violation(
                "setting", f"CHECKPOINT_DIR={self.store.folder}: client {self.store.client} "
                f"takes over as aggregator from dropped client(s) {dropped}, but no averaged "
                f"model of rounds {without_model} is there; put CHECKPOINT_DIR on storage every "
                "client shares, or use FAILURE_POLICY=wait"))
        if self.own and self.own[-1] == self._num_rounds - 1:
            self.forget(f"their run finished (round {self._num_rounds} is among them)")

    def _has_model(self, round_: int, own: Checkpoint) -> bool:
        """Find round ``round_``'s averaged model (Note: aggregator hand-over)."""
        for store in (self.store, *self._model_from):
            try:
                checkpoint = own if store is self.store else store.read(round_)
            except (ValueError, PlanMismatch):  # unreadable, or of an unrelated plan
                continue
            if any(key.startswith(AVERAGED) for key in checkpoint.tensors):
                self._models[round_] = store
                return True
        log.warning("client %d: checkpoint of round %d skipped: no averaged model of it in %s "
                    "(the aggregator's checkpoint is needed to take over its role)",
                    self.store.client, round_, self.store.folder)
        return False

    def forget(self, why: str) -> None:
        """Announce no checkpoint (``why``: one line for the log): the run starts at round 0."""
        if self.own:
            log.warning("client %d: checkpoints of rounds %s not resumed: %s", self.store.client,
                        self.own, why)
        self.own, self.run_id = [], None

    def announce(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Return the join facts: the plan's, with this client's verified rounds."""
        return {**facts, ROUNDS_FACT: list(self.own)}

    def learn(self, peer: int, facts: Mapping[str, Any]) -> None:
        """Take the rounds ``peer`` announced in a join (ProtocolError if they are malformed)."""
        rounds = facts.get(ROUNDS_FACT, [])
        if (not isinstance(rounds, list) or len(rounds) > MAX_ANNOUNCED
                or not all(type(r) is int and 0 <= r < self._num_rounds for r in rounds)):
            shown = repr(rounds)[:200]
            raise ProtocolError(
                f"client {self.store.client} refused the checkpoint rounds of client {peer}: "
                f"{shown} is not a list of at most {MAX_ANNOUNCED} rounds in "
                f"0..{self._num_rounds - 1}")
        self._peers[peer] = frozenset(rounds)

    def agree(self, peers: Iterable[int]) -> int | None:
        """Take R, the highest round every client has a checkpoint of, and read it here."""
        common = set(self.own)
        for peer in peers:
            common &= self._peers.get(peer, frozenset())
        self.round = max(common, default=None)
        if self.round is not None:
            self.checkpoint = self.store.read(self.round)
            source = self._models.get(self.round, self.store)
            self.model_checkpoint = (self.checkpoint if source is self.store
                                     else source.read(self.round))
            log.info("client %d resumes after round %d (checkpoint %s)", self.store.client,
                     self.round, self.store.folder / f"{self.store.stem(self.round)}.json")
        return self.round

    def latest_batches(self) -> dict[int, int]:
        """Return the checkpoint's latest batch of each owner that ran here."""
        assert self.checkpoint is not None
        latest = self.checkpoint.extra.get("latest_batches", {})
        if not isinstance(latest, dict):
            raise ValueError("the checkpoint's latest_batches is not a JSON object")
        return {int(owner): int(batch) for owner, batch in latest.items()}
