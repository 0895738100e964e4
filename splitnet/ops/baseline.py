"""``splitnet baseline``: the same training, centrally in one process (the reference).

Same model, data, optimizer, batch size, epochs and seed, written in the same result format.
It trains on the union of the owners' training shards (exactly the samples the cluster trains
on), for ``TRAINING_NUM_ROUNDS x TRAINING_NUM_EPOCHS`` epochs, evaluating after each round's
worth of epochs.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from splitnet.learning.data import Dataset, load_dataset, owner_data
from splitnet.learning.evaluation import evaluate
from splitnet.learning.models import build_partitions, compose
from splitnet.plan.plan import Plan
from splitnet.runtime.segment import make_optimizer
from splitnet.telemetry.progress import Progress
from splitnet.telemetry.results import ResultsWriter

__all__ = ["run_baseline", "train_union"]


def train_union(plan: Plan, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the union of the owners' training shards: exactly what the cluster trains on."""
    s = plan.settings
    shards = [owner_data(dataset, plan.shard_of(o), s, plan.num_shards) for o in plan.owners]
    return torch.cat([d.train_x for d in shards]), torch.cat([d.train_y for d in shards])


def run_baseline(plan: Plan, results_dir: Path) -> dict[str, Any]:
    """Train centrally; write metrics.csv, summary.json and models; return the summary."""
    s = plan.settings
    dataset = load_dataset(s)
    x, y = train_union(plan, dataset)
    model = compose(build_partitions(
        s.model, dataset.spec, s.seed, s.bert_model, s.bert_pretrained))
    optimizer = make_optimizer(s.optimizer, model.parameters(), s.learning_rate)
    generator = torch.Generator().manual_seed(s.seed)
    writer = ResultsWriter(results_dir)
    writer.start_metrics()
    rows = []
    start = time.time()
    progress = Progress("baseline", s.num_rounds, s.num_epochs)
    for round_ in range(s.num_rounds):
        round_start, loss_sum, batches = time.time(), 0.0, 0
        model.train()
        for epoch in range(s.num_epochs):
            order = torch.randperm(len(y), generator=generator)
            for first in range(0, len(y), s.batch_size):
                index = order[first:first + s.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(x[index]), y[index])
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach())
                batches += 1
                progress.tick(round_, epoch, batches, loss_sum, False)
        progress.tick(round_, s.num_epochs - 1, batches, loss_sum, True)
        metrics = evaluate(model, dataset.test_x, dataset.test_y)
        row = {"round": round_ + 1, "test_accuracy": round(metrics["accuracy"], 6),
               "f1_macro": round(metrics["f1_macro"], 6), "test_loss": round(metrics["loss"], 6),
               "train_loss": round(loss_sum / max(batches, 1), 6),
               "round_seconds": round(time.time() - round_start, 3), "bytes_sent": 0,
               "bytes_received": 0, "samples": len(y) * s.num_epochs}
        writer.add_round(row)
        rows.append(row)
    path = writer.save_model(s.num_rounds, model.state_dict())
    train_seconds = sum(r["round_seconds"] for r in rows)
    summary = {
        "fingerprint": plan.fingerprint, "model": s.model, "dataset": s.dataset, "clients": 1,
        "rounds": s.num_rounds, "test_accuracy": rows[-1]["test_accuracy"],
        "f1_macro": rows[-1]["f1_macro"], "test_loss": rows[-1]["test_loss"],
        "train_loss": rows[-1]["train_loss"], "total_seconds": round(time.time() - start, 3),
        "train_seconds": round(train_seconds, 3),
        "samples_per_second": round(sum(r["samples"] for r in rows) / max(train_seconds, 1e-9),
                                    2),
        "bytes_sent": 0, "model_bytes_on_disk": path.stat().st_size,
        "peak_rss_mib": {"1": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
    }
    writer.write_summary(summary)
    return summary
