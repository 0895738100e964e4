"""Time each partition's forward and backward on this machine (``splitnet profile``).

The model is built as every client builds it (seeded), fed a seeded random batch of
``BATCH_SIZE`` samples of the dataset's shape, and each partition's forward and backward is
timed separately on the CPU: a few warm-up iterations, then the median of the timed ones. The
loss (cross-entropy on the last partition's output) is counted in the last partition's backward,
as the owner runs them in one step. The bytes each partition hands on (its output; the gradient
coming back has the same size) are recorded too: the simulator's transfer sizes.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from splitnet.config.settings import DataSettings, TrainingSettings
from splitnet.learning.data import dataset_spec, load_dataset, owner_data
from splitnet.learning.models import build_partitions

__all__ = ["Profile", "batches_per_round", "profile_partitions"]


@dataclass(frozen=True)
class Profile:
    """Seconds per partition (forward, backward), bytes handed on, and what was measured."""

    model: str
    batch_size: int
    threads: int
    forward: tuple[float, ...]
    backward: tuple[float, ...]
    activation_bytes: tuple[int, ...]
    model_bytes: int
    dataset: str | None = None  # CURRENT_DATASET measured on (None: a profile from before)

    def as_json(self) -> dict[str, Any]:
        """Return the profile as plain JSON data."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        """Read :meth:`as_json`'s output; raise ValueError naming a missing or bad field."""
        try:
            fields = {key: data[key] for key in ("model", "batch_size", "threads", "forward",
                                                 "backward", "activation_bytes", "model_bytes")}
            lists = [list(fields[key]) for key in ("forward", "backward", "activation_bytes")]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a splitnet profile ({type(exc).__name__}: {exc}); expected "
                             "the JSON `splitnet profile --out` writes") from None
        problems: list[str] = []
        counts = {key: _check(problems, key, fields[key], _count, minimum)
                  for key, minimum in (("batch_size", 1), ("threads", 1), ("model_bytes", 0))}
        forward, backward = ([_check(problems, f"{key}[{i}]", x, _seconds)
                              for i, x in enumerate(values)]
                             for key, values in zip(("forward", "backward"), lists[:2],
                                                    strict=True))
        sizes = [_check(problems, f"activation_bytes[{i}]", x, _count, 0)
                 for i, x in enumerate(lists[2])]
        dataset = data.get("dataset")  # absent from profiles written before it was recorded
        if dataset is not None and not isinstance(dataset, str):
            problems.append(f"dataset {dataset!r}: expected a dataset name")
        if len({len(values) for values in lists}) != 1:
            problems.append("forward, backward and activation_bytes need one entry per "
                            "partition each")
        if problems:
            raise ValueError("bad values in the profile: " + "; ".join(problems))
        return cls(str(fields["model"]), counts["batch_size"], counts["threads"],
                   tuple(forward), tuple(backward), tuple(sizes), counts["model_bytes"],
                   dataset)


MAX_STEP_SECONDS = 3600.0
"""The longest partition step a profile may claim: an hour (a larger time is no measurement)."""


def _check(problems: list[str], name: str, value: Any, parse: Any, *args: Any) -> Any:
    """Return ``parse(value, *args)``, or 0 with ``name: why`` added to ``problems``."""
    try:
        return parse(value, *args)
    except ValueError as exc:
        problems.append(f"{name} {exc}")
        return 0


def _count(value: Any, minimum: int) -> int:
    """Return a JSON whole number ≥ ``minimum`` (not a bool, not 32.5)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{value!r}: expected a whole number ≥ {minimum}")
    return value


def _seconds(value: Any) -> float:
    """Return a JSON time in seconds from 0 to :data:`MAX_STEP_SECONDS`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value <= MAX_STEP_SECONDS):
        raise ValueError(f"{value!r}: expected a time from 0 to {MAX_STEP_SECONDS:g} s")
    return float(value)


def _batch(training: TrainingSettings, generator: torch.Generator) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    spec = dataset_spec(training)
    b = training.batch_size
    if training.model == "BERT":
        x = torch.randint(0, max(spec.vocab_size, 2), (b, *spec.shape), generator=generator)
    else:
        x = torch.randn((b, *spec.shape), generator=generator)
    return x, torch.randint(0, spec.num_classes, (b,), generator=generator)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> float:
    """Return the seconds since ``start``: the lesser of wall and CPU time.

    Note: contended profile. On a busy machine the wall time of a step includes waiting for a
    core; with several torch threads the process's CPU time counts each thread. The lesser of the
    two is the step's own cost in both cases.
    """
    wall, cpu = _clock()
    return min(wall - start[0], cpu - start[1])


def _once(parts: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> tuple[
        list[float], list[float], list[int]]:
    """Run one batch partition by partition; return forward and backward seconds, and sizes."""
    forward, backward, sizes = [], [], []
    inputs, outputs = [], []
    current = x
    for part in parts:
        start = _clock()
        held = current.detach().requires_grad_(current.is_floating_point())
        out = part(held)
        forward.append(_since(start))
        inputs.append(held)
        outputs.append(out)
        sizes.append(out.numel() * out.element_size())
        current = out
    grad: torch.Tensor | None = None
    for index in reversed(range(len(parts))):
        start = _clock()
        if grad is None:
            nn.functional.cross_entropy(outputs[index], y).backward()
        else:
            outputs[index].backward(grad)
        grad = inputs[index].grad
        backward.append(_since(start))
    return forward, backward[::-1], sizes


def profile_partitions(training: TrainingSettings, warmup: int = 3, iterations: int = 10,
                       seed: int | None = None, threads: int = 1) -> Profile:
    """Time every partition of the configured model at ``BATCH_SIZE`` on this machine's CPU.

    ``threads``: torch intra-op threads while timing (a client's ``TORCH_THREADS``; 1 is what
    ``splitnet local`` gives each client); 0 keeps this process's count.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _profile(training, warmup, iterations, seed)
    finally:
        torch.set_num_threads(before)


def _profile(training: TrainingSettings, warmup: int, iterations: int,
             seed: int | None) -> Profile:
    parts = build_partitions(training.model, dataset_spec(training), training.seed,
                             training.bert_model)
    generator = torch.Generator().manual_seed(training.seed if seed is None else seed)
    x, y = _batch(training, generator)
    runs = []
    for index in range(warmup + iterations):
        for part in parts:
            part.zero_grad(set_to_none=True)
        result = _once(parts, x, y)
        if index >= warmup:
            runs.append(result)
    forward = tuple(statistics.median(r[0][i] for r in runs) for i in range(len(parts)))
    backward = tuple(statistics.median(r[1][i] for r in runs) for i in range(len(parts)))
    model_bytes = sum(p.numel() * p.element_size() for part in parts for p in part.parameters())
    return Profile(training.model, training.batch_size, torch.get_num_threads(), forward,
                   backward, tuple(runs[0][2]), model_bytes, training.dataset)


def batches_per_round(training: TrainingSettings, data: DataSettings,
                      owners: tuple[int, ...], num_shards: int) -> dict[int, int]:
    """Return how many batches each owner trains a round (its shard, every epoch)."""
    dataset = load_dataset(training, data)
    result = {}
    for shard, owner in enumerate(owners):
        n = len(owner_data(dataset, shard, training, num_shards).train_y)
        result[owner] = math.ceil(n / training.batch_size) * training.num_epochs
    return result
