"""Differential privacy at the cut: which steps noise what they send, with what seed, ε spent.

Note: noise at the cut. With ``DP_ACTIVATIONS=on`` every forward step an owner runs on its own
client whose output goes to another client (the cut activations: stage 1's output when stage 2
runs elsewhere) is clipped per sample and noised (:func:`splitnet.learning.dp.clip_and_noise`)
before it is sent; with ``DP_GRADIENTS=on`` so is the gradient the owner's loss step (stage P+1,
Note: loss chained) sends to another client. Steps that run on a helper, and hand-offs inside a
client, are never noised; with both off nothing here runs and the math is unchanged. The noise
comes from a generator seeded from (SEED, owner, stage, batch, round), so a run is reproducible.

Accounting: each such step releases every sample of the owner's shard once per epoch, so after
``rounds`` rounds an owner has made ``rounds * TRAINING_NUM_EPOCHS * steps`` Gaussian releases
(no subsampling); ε at ``DP_DELTA`` comes from :func:`splitnet.learning.dp.epsilon`. The run's ε
is the largest over owners (in the usual plans every owner makes the same releases).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from splitnet.config.settings import TrainingSettings
from splitnet.learning.dp import clip_and_noise, epsilon
from splitnet.plan.plan import Plan
from splitnet.plan.segments import entries_of, hand_on
from splitnet.plan.task import Task

__all__ = ["dp_block", "noise", "noise_generator", "noised", "owner_epsilon", "releases",
           "run_epsilon"]


def noised(plan: Plan, task: Task) -> bool:
    """Return whether the step entry ``task`` starts noises its result (Note: noise at the cut).

    ``task`` is an entry of a run (:func:`splitnet.plan.segments.entries_of`).
    """
    s = plan.training
    if not s.dp:
        return False
    nxt = hand_on(plan, task)
    if nxt is None or plan.runner_of(task) != task.owner or plan.runner_of(nxt) == task.owner:
        return False
    p = plan.num_partitions
    if nxt.stage <= p:  # a forward output leaving the owner
        return s.dp_activations
    return s.dp_gradients and task.stage <= p  # the loss step's gradient (Note: loss chained)


def releases(plan: Plan, owner: int, rounds: int) -> int:
    """Return how many times each sample of ``owner`` has been released after ``rounds`` rounds."""
    steps = sum(1 for task in entries_of(plan, owner) if task.owner == owner and noised(plan, task))
    return rounds * plan.training.num_epochs * steps


def owner_epsilon(plan: Plan, owner: int, rounds: int) -> float:
    """Return the ε ``owner`` has spent after ``rounds`` rounds (0.0 when nothing is noised)."""
    s = plan.training
    return epsilon(s.dp_noise_multiplier, releases(plan, owner, rounds), s.dp_delta)


def run_epsilon(plan: Plan, rounds: int) -> float:
    """Return ε after ``rounds`` rounds: the largest over owners (0.0 when nothing is noised)."""
    s = plan.training
    counts = [releases(plan, owner, rounds) for owner in plan.owners]
    return epsilon(s.dp_noise_multiplier, max(counts, default=0), s.dp_delta)


def noise_generator(seed: int, owner: int, stage: int, batch: int, round_: int) -> torch.Generator:
    """Return a generator seeded from (seed, owner, stage, batch, round) alone."""
    digest = hashlib.sha256(f"dp:{seed}:{owner}:{stage}:{batch}:{round_}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def noise(training: TrainingSettings, task: Task, batch: int, round_: int,
          tensor: torch.Tensor, gradient: bool = False) -> torch.Tensor:
    """Clip and noise what ``task``'s step sends, with the generator of (task, batch, round).

    A gradient is clipped to ``DP_GRADIENT_CLIP``, activations to ``DP_CLIP``: their per-sample
    norms differ by orders of magnitude (a mean loss's gradient is about 1/batch of a sample's).
    """
    generator = noise_generator(training.seed, task.owner, task.stage, batch, round_)
    clip = training.dp_gradient_clip if gradient else training.dp_clip
    return clip_and_noise(tensor, clip, training.dp_noise_multiplier, generator)


def dp_block(training: TrainingSettings, spent: float) -> dict[str, Any]:
    """Return ``summary.json``'s ``"dp"`` block (ε as a number; ``null`` if unbounded)."""
    return {"activations": training.dp_activations, "gradients": training.dp_gradients,
            "clip": training.dp_clip, "gradient_clip": training.dp_gradient_clip,
            "noise_multiplier": training.dp_noise_multiplier,
            "delta": training.dp_delta,
            "epsilon": round(spent, 6) if math.isfinite(spent) else None}
