"""The owner side: feed an owner's shard through the pipeline, epoch by epoch, batch by batch.

The batch order comes from :func:`splitnet.learning.batches.owner_generator` and
:func:`~splitnet.learning.batches.epoch_batches`, the functions the baseline and the pipelining
benchmark use too.

Note: batches in flight. With ``PIPELINE_DEPTH=1`` (the default) an owner feeds batch b+1 only
when batch b has finished its last backward stage, so every replica has applied batch b before
it sees batch b+1: the result equals plain SGD on the owner's model wherever the partitions run.
With ``PIPELINE_DEPTH=k`` it keeps up to k batches in flight, feeding batch b+k once batch b is
done (completions are awaited oldest first), so every replica has applied batch b when batch
b+k arrives: the version weight stashing needs (:mod:`splitnet.runtime.segment`). A round ends
with every batch done (the pipeline drains before averaging). Owners run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from splitnet.learning.batches import epoch_batches, owner_generator
from splitnet.learning.cut_privacy import owner_epsilon
from splitnet.learning.data import OwnerData
from splitnet.plan.units import batch_of
from splitnet.runtime.interpreter import Interpreter
from splitnet.telemetry.progress import Progress
from splitnet.telemetry.records import OwnerStats

__all__ = ["Feeder"]

log = logging.getLogger("splitnet.runtime")


class Feeder:
    """Feeds ``owner``'s training data to ``interpreter`` (the owner's own client)."""

    def __init__(self, interpreter: Interpreter, owner: int, data: OwnerData) -> None:
        self.interpreter = interpreter
        self.owner = owner
        self.data = data
        s = interpreter.plan.training
        self.progress = Progress(f"owner {owner}", s.num_rounds, s.num_epochs)
        self._next_batch = 0  # batch numbers go on across rounds

    def resume(self, latest: int) -> None:
        """Continue after the unit ``latest`` (a checkpoint's; batch order is seeded)."""
        self._next_batch = batch_of(latest, self.interpreter.plan.training.micro_batches) + 1

    async def train(self, round_: int) -> OwnerStats:
        """Feed the shard for ``TRAINING_NUM_EPOCHS`` epochs of round ``round_``."""
        s = self.interpreter.plan.training
        generator = owner_generator(s.seed, self.owner, round_)
        x, y = self.data.train_x, self.data.train_y
        m, label = self.interpreter.metrics, str(self.owner)
        samples = batches = 0
        loss_sum = 0.0
        flight: deque[tuple[asyncio.Future[float], int, int]] = deque()

        async def complete() -> None:  # the oldest batch in flight
            nonlocal samples, batches, loss_sum
            done, size, epoch = flight.popleft()
            loss_sum += await done
            m.in_flight.labels(m.client).set(len(flight))
            samples += size
            batches += 1
            m.batches.labels(m.client, label).inc()
            m.samples.labels(m.client, label).inc(size)
            self.progress.tick(round_, epoch, batches, loss_sum, False)

        for epoch in range(s.num_epochs):
            m.epoch.labels(m.client).set(epoch)
            for index in epoch_batches(len(y), s.batch_size, generator):
                batch = self._next_batch
                self._next_batch += 1
                flight.append((self.interpreter.feed(self.owner, batch, round_, x[index],
                                                     y[index]), len(index), epoch))
                m.in_flight.labels(m.client).set(len(flight))
                while len(flight) >= s.pipeline_depth:  # Note: batches in flight
                    await complete()
        while flight:
            await complete()
        self.progress.tick(round_, s.num_epochs - 1, batches, loss_sum, True)
        if s.dp:
            self._account(round_)
        return OwnerStats(self.owner, samples, batches, loss_sum)

    def _account(self, round_: int) -> None:
        """Log and export the privacy spent once ``round_`` is trained (Note: noise at the cut)."""
        plan, m = self.interpreter.plan, self.interpreter.metrics
        spent = owner_epsilon(plan, self.owner, round_ + 1)
        m.dp_epsilon.labels(m.client).set(spent)
        log.info("owner %d: differential privacy at the cut: epsilon %.4g this round, %.4g after "
                 "%d round(s) (delta %g, noise multiplier %g, clips %g / %g)", self.owner,
                 owner_epsilon(plan, self.owner, 1), spent, round_ + 1, plan.training.dp_delta,
                 plan.training.dp_noise_multiplier, plan.training.dp_clip,
                 plan.training.dp_gradient_clip)
