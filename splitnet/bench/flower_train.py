"""What the Flower row trains, without Flower: settings, owner shards, batch order, one round.

The Flower apps (:mod:`splitnet.bench.flower_app`, run inside ``.venv-flower``) call these, so
the Flower row trains exactly what splitnet's all-local case trains: the same settings file
(every owner runs its whole model at home), the same shard per owner (``owner_data`` of the
plan's ``shard_of(owner)``), the same batch order (``owner_generator(seed, owner, round)`` and
``epoch_batches``, the owner feeder's functions) and the same optimizer. FedAvg weights every
owner by the samples it trained in the round, as splitnet's aggregator does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from splitnet.bench.options import BenchOptions, settings_lines
from splitnet.config import Settings
from splitnet.config.catalog import num_partitions
from splitnet.learning.batches import epoch_batches, owner_generator
from splitnet.learning.data import Dataset, OwnerData, load_dataset, owner_data
from splitnet.learning.models import build_partitions, compose
from splitnet.learning.optim import make_optimizer
from splitnet.ops.prepare import prepare
from splitnet.plan.generate import generate_lists
from splitnet.plan.plan import Plan

__all__ = ["FlowerJob", "all_local_lines", "owner_batches", "train_round"]


def all_local_lines(opts: BenchOptions) -> list[str]:
    """Return the settings file of splitnet's all-local case for ``opts`` (one line a key)."""
    return settings_lines(opts, generate_lists(opts.clients, num_partitions(opts.model)))


@dataclass(frozen=True)
class FlowerJob:
    """Settings, plan and data of one Flower run, read from the all-local settings file."""

    settings: Settings
    plan: Plan
    dataset: Dataset

    @classmethod
    def load(cls, env_file: Path) -> FlowerJob:
        """Read ``env_file`` (and nothing from the environment) and load the dataset."""
        settings, plan = prepare(env_file, environ={}, env_file_required=True)
        return cls(settings, plan, load_dataset(plan.training, settings.data))

    def model(self) -> nn.Sequential:
        """Return the whole model as splitnet builds it from the seed (the initial weights)."""
        t = self.plan.training
        return compose(build_partitions(t.model, self.dataset.spec, t.seed, t.bert_model,
                                        self.settings.data.bert_pretrained))

    def shard(self, owner: int) -> OwnerData:
        """Return what ``owner`` (1-based, as in splitnet) trains on."""
        if owner not in self.plan.owners:
            raise ValueError(f"owner {owner}: expected one of {list(self.plan.owners)}")
        return owner_data(self.dataset, self.plan.shard_of(owner), self.plan.training,
                          self.plan.num_shards)


def owner_batches(job: FlowerJob, owner: int, round_: int) -> Iterator[
        tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``owner``'s batches of round ``round_`` (0-based), every epoch, in feeder order."""
    t = job.plan.training
    data = job.shard(owner)
    generator = owner_generator(t.seed, owner, round_)
    for _ in range(t.num_epochs):
        for index in epoch_batches(len(data.train_y), t.batch_size, generator):
            yield data.train_x[index], data.train_y[index]


def train_round(job: FlowerJob, model: nn.Module, owner: int,
                round_: int) -> tuple[int, float]:
    """Train ``model`` in place on ``owner``'s round; return (samples, mean batch loss)."""
    t = job.plan.training
    optimizer = make_optimizer(t.optimizer, model.parameters(), t.learning_rate)
    model.train()
    samples, batches, loss_sum = 0, 0, 0.0
    for x, y in owner_batches(job, owner, round_):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        samples += len(y)
        batches += 1
        loss_sum += float(loss.detach())
    return samples, loss_sum / max(batches, 1)
