"""The same training with ``torch.distributed.pipelining`` (gloo), for ``splitnet bench``.

One process per partition (the same cut splitnet uses), GPipe schedule. A step takes
``microbatches`` micro-batches of ``BATCH_SIZE`` samples (by default as many as splitnet has
owners, so both keep the same number of batches in flight), averages their gradients
(``scale_grads``) and steps every stage's optimizer once. It trains on the union of the owners'
shards for ``TRAINING_NUM_ROUNDS x TRAINING_NUM_EPOCHS`` epochs, dropping a last step that would
be short. Rank 0 writes ``summary.json``; every rank saves its partition, merged into
``models/model.safetensors`` with splitnet's ``partition/name`` keys.

Run: ``python -m splitnet.bench.pipelining ENV_FILE RESULTS_DIR MICROBATCHES`` (it starts the
ranks itself, on loopback). :func:`launch` with a :class:`~splitnet.ops.wan.Wan` runs rank r in
endpoint r+1 of that emulated WAN instead (``splitnet bench --rtt``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from splitnet.config.catalog import num_partitions
from splitnet.learning.batches import epoch_batches
from splitnet.learning.data import load_dataset
from splitnet.learning.keys import flatten
from splitnet.learning.models import build_partitions
from splitnet.learning.optim import make_optimizer
from splitnet.ops.baseline import train_union
from splitnet.ops.prepare import prepare
from splitnet.ops.wan import Wan
from splitnet.telemetry.records import Pipelined, peak_rss_kib, run_summary
from splitnet.telemetry.results import ResultsWriter
from splitnet.transport.ports import free_ports

__all__ = ["launch"]


def launch(env_file: Path, results: Path, microbatches: int, wan: Wan | None = None) -> None:
    """Start one rank per partition and wait for all of them; merge their partitions."""
    training = prepare(env_file)[0].training
    world = num_partitions(training.model, training.bert_model)
    port = free_ports(1)[0] if wan is None else 29500  # each endpoint has its own ports
    master = "127.0.0.1" if wan is None else wan.address(1)
    where = {"GLOO_SOCKET_IFNAME": "eth0"} if wan is not None else {}
    results.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen(
        [*(wan.prefix(rank + 1) if wan is not None else []), sys.executable, "-m",
         "splitnet.bench.pipelining", str(env_file), str(results), str(microbatches)],
        env={**os.environ, **where, "RANK": str(rank), "WORLD_SIZE": str(world),
             "MASTER_ADDR": master, "MASTER_PORT": str(port)})
        for rank in range(world)]
    codes = [proc.wait() for proc in procs]
    if any(codes):
        raise SystemExit(f"torch pipelining ranks exited with {codes}")
    merged: dict[str, torch.Tensor] = {}
    for rank in range(world):
        path = results / f"rank{rank}.safetensors"
        merged.update(load_file(str(path)))
        path.unlink()
    (results / "models").mkdir(exist_ok=True)
    save_file(merged, str(results / "models" / "model.safetensors"))


def _rank(env_file: Path, results: Path, microbatches: int) -> None:
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    settings, plan = prepare(env_file)
    s = plan.training
    torch.set_num_threads(settings.output.torch_threads or 1)
    dataset = load_dataset(s, settings.data)
    x, y = train_union(plan, dataset)
    parts = build_partitions(s.model, dataset.spec, s.seed, s.bert_model,
                             settings.data.bert_pretrained)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    module = parts[rank]
    stage = PipelineStage(_Contiguous(module), rank, world, torch.device("cpu"))
    schedule = ScheduleGPipe(stage, microbatches, loss_fn=nn.functional.cross_entropy)
    optimizer = make_optimizer(s.optimizer, module.parameters(), s.learning_rate)
    step = s.batch_size * microbatches
    generator = torch.Generator().manual_seed(s.seed)
    epochs = s.num_rounds * s.num_epochs
    dist.barrier()
    start = time.time()
    samples = 0
    for _ in range(epochs):
        for index in epoch_batches(len(y), step, generator, drop_last=True):
            optimizer.zero_grad(set_to_none=True)
            if rank == 0:
                schedule.step(x[index])
            elif rank == world - 1:
                schedule.step(target=y[index], losses=[])
            else:
                schedule.step()
            optimizer.step()
            samples += len(index)
    dist.barrier()
    seconds = time.time() - start
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(flatten({rank + 1: state}), str(results / f"rank{rank}.safetensors"))
    rss: list[int] = [0] * world
    dist.all_gather_object(rss, peak_rss_kib())
    if rank == 0:
        boundary = _boundary_bytes(parts, x[:s.batch_size])
        batches = samples // s.batch_size
        summary = run_summary(s.model, s.dataset, dict(enumerate(rss, 1)), pipelined=Pipelined(
            world, microbatches, seconds, samples, epochs, batches, boundary * 2 * batches))
        ResultsWriter.into(results).write_summary(summary)
    dist.destroy_process_group()


class _Contiguous(nn.Module):
    """A stage whose output is contiguous (gloo sends only contiguous tensors)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the partition."""
        return self.inner(x).contiguous()


@torch.no_grad()
def _boundary_bytes(parts: list[nn.Module], x: torch.Tensor) -> int:
    """Return the activation bytes one micro-batch sends across all stage boundaries."""
    total = 0
    for part in parts[:-1]:
        x = part(x)
        total += x.numel() * x.element_size()
    return total


if __name__ == "__main__":
    env, out, micro = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    if "RANK" in os.environ:
        _rank(env, out, micro)
    else:
        launch(env, out, micro)
