"""``splitnet baseline``: the same training, centrally in one process (the reference).

Same model, data, optimizer, batch size, epochs and seed, written in the same result format.
It trains on the union of the owners' training shards (exactly the samples the cluster trains
on), for ``TRAINING_NUM_ROUNDS x TRAINING_NUM_EPOCHS`` epochs, evaluating after each round's
worth of epochs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from splitnet.config import Settings
from splitnet.learning.batches import epoch_batches
from splitnet.learning.data import Dataset, load_dataset, owner_data
from splitnet.learning.evaluation import evaluate
from splitnet.learning.models import build_partitions, compose
from splitnet.learning.optim import make_optimizer
from splitnet.learning.threads import apply_threads, thread_label
from splitnet.plan.plan import Plan
from splitnet.telemetry.progress import Progress
from splitnet.telemetry.records import RoundRow, Trained, peak_rss_kib, run_summary
from splitnet.telemetry.results import ResultsWriter

__all__ = ["run_baseline", "train_union"]


def train_union(plan: Plan, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the union of the owners' training shards: exactly what the cluster trains on."""
    shards = [owner_data(dataset, plan.shard_of(o), plan.training, plan.num_shards)
              for o in plan.owners]
    return torch.cat([d.train_x for d in shards]), torch.cat([d.train_y for d in shards])


def run_baseline(settings: Settings, plan: Plan, results_dir: Path) -> dict[str, Any]:
    """Train centrally; write metrics.csv, summary.json and models; return the summary."""
    s = plan.training
    apply_threads(settings.output.torch_threads, settings.output.torch_interop_threads)
    dataset = load_dataset(s, settings.data)
    x, y = train_union(plan, dataset)
    model = compose(build_partitions(
        s.model, dataset.spec, s.seed, s.bert_model, settings.data.bert_pretrained))
    optimizer = make_optimizer(s.optimizer, model.parameters(), s.learning_rate)
    generator = torch.Generator().manual_seed(s.seed)
    writer = ResultsWriter.into(results_dir)
    writer.start_metrics()
    rows: list[RoundRow] = []
    start = time.time()
    progress = Progress("baseline", s.num_rounds, s.num_epochs)
    for round_ in range(s.num_rounds):
        round_start, loss_sum, batches = time.time(), 0.0, 0
        model.train()
        for epoch in range(s.num_epochs):
            for index in epoch_batches(len(y), s.batch_size, generator):
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(x[index]), y[index])
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach())
                batches += 1
                progress.tick(round_, epoch, batches, loss_sum, False)
        progress.tick(round_, s.num_epochs - 1, batches, loss_sum, True)
        metrics = evaluate(model, dataset.test_x, dataset.test_y)
        row = RoundRow.measured(round_, metrics, loss_sum=loss_sum, batches=batches,
                                seconds=time.time() - round_start, bytes_sent=0,
                                bytes_received=0, samples=len(y) * s.num_epochs)
        writer.add_round(row)
        rows.append(row)
    path = writer.save_model(s.num_rounds, model.state_dict())
    summary = run_summary(s.model, s.dataset, {1: peak_rss_kib()}, trained=Trained(
        plan.fingerprint, 1, rows, time.time() - start, path.stat().st_size))
    summary["threads"] = thread_label()
    writer.write_summary(summary)
    return summary
