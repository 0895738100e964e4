"""Split training in one process, with the cut made visible: what an attacker at the helper sees.

The owner holds partition 1 and the last partition (the labels and the loss); a helper holds
the partitions between. That is splitnet's own placement for an owner that offloads its middle
(``generate_lists(..., offload)``, as ``example_configurations/owner_and_helper.env``), and
:func:`cut_settings` builds exactly those settings, so model, data, batch size, optimizer and
learning rate are the ones a cluster would use.

Each batch crosses the cut as it does between clients: the owner's partition-1 output goes to
the helper through ``hooks.activations`` (what ``DP_ACTIVATIONS`` applies), and the gradient the
owner's last partition sends back to the helper goes through ``hooks.gradients`` (what
``DP_GRADIENTS`` applies). ``hooks.observe`` sees that gradient as the helper receives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from splitnet.config import Settings
from splitnet.config.load import load
from splitnet.learning.batches import epoch_batches
from splitnet.learning.dp import clip_and_noise
from splitnet.learning.optim import make_optimizer
from splitnet.plan.generate import generate_lists

__all__ = ["CutHooks", "Release", "cut_settings", "release", "train_split"]

Release = Callable[[torch.Tensor], torch.Tensor]
"""What happens to a tensor on its way across the cut (identity, or clip and noise)."""

Observer = Callable[[torch.Tensor, torch.Tensor, int], None]
"""Called per batch with the gradient as the helper receives it, the labels and the epoch."""


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass
class CutHooks:
    """What the cut does to activations and gradients, and who watches the gradients."""

    activations: Release = _identity
    gradients: Release = _identity
    observe: Observer | None = None


def cut_settings(seed: int) -> Settings:
    """Return the settings of one owner (client 1) offloading partitions 2..P-1 to client 2.

    The lists are ``owner_and_helper.env``'s; the learning rate is ``splitnet bench``'s (0.1),
    the rest the defaults.
    """
    lists = generate_lists(2, 4, [1], {(1, 2): 2, (1, 3): 2})
    values = {"NUM_CLIENTS": "2", "CURRENT_MODEL": "CNN", "CURRENT_DATASET": "DIGITS",
              "LEARNING_RATE": "0.1", "SEED": str(seed),
              "SIMULATION_STAGES_CLIENTS": json.dumps(lists)}
    return load(None, values=values)


def release(clip: float, sigma: float, seed: int) -> Release:
    """Return ``clip_and_noise`` at (``clip``, ``sigma``) with its own seeded generator."""
    generator = torch.Generator().manual_seed(seed)

    def apply(x: torch.Tensor) -> torch.Tensor:
        return clip_and_noise(x, clip, sigma, generator)
    return apply


def train_split(parts: list[nn.Module], x: torch.Tensor, y: torch.Tensor, settings: Settings,
                epochs: int, hooks: CutHooks) -> None:
    """Train ``parts`` on ``(x, y)`` for ``epochs``; each batch crosses the cut via ``hooks``."""
    t = settings.training
    first, middle, last = parts[0], nn.Sequential(*parts[1:-1]), parts[-1]
    optimizer = make_optimizer(t.optimizer, [p for part in parts for p in part.parameters()],
                               t.learning_rate)
    generator = torch.Generator().manual_seed(t.seed)
    for part in parts:
        part.train()
    for epoch in range(epochs):
        for index in epoch_batches(len(y), t.batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            cut = first(x[index])                                   # owner, partition 1
            received = hooks.activations(cut.detach()).requires_grad_()
            hidden = middle(received)                               # helper
            handed = hidden.detach().requires_grad_()
            loss = nn.functional.cross_entropy(last(handed), y[index])  # owner, last partition
            loss.backward()
            gradient = hooks.gradients(_grad(handed))               # what the helper receives
            if hooks.observe is not None:
                hooks.observe(gradient, y[index], epoch)
            hidden.backward(gradient)                               # helper
            cut.backward(_grad(received))                           # owner, partition 1
            optimizer.step()


def _grad(leaf: torch.Tensor) -> torch.Tensor:
    if leaf.grad is None:  # every cut tensor feeds the loss; None would be a wiring mistake
        raise RuntimeError("a tensor at the cut got no gradient")
    return leaf.grad
