"""Model inversion at the cut: rebuild the owner's inputs from the activations it releases.

The victim (an owner) trains the 10-class CNN on DIGITS with its middle on a helper. The
attacker, at the helper, holds auxiliary data (a held-out third of the training split, never
seen by the victim's training), gets the released partition-1 activations of those images (it
can query the owner's first partition, black-box), and trains a small decoder from activations
back to the 8x8 image. It is scored by the mean squared error of its reconstructions of the
victim's test images from their released activations; the mean auxiliary image, whatever the
activation, is the trivial baseline (pixels are in [-1, 1]).

With protection, every activation the owner releases (in training, for the auxiliary queries
and for the test images) goes through ``clip_and_noise``, as ``DP_ACTIVATIONS`` does.

Note: evaluation at the cut. A clip that binds (activations here have norms near 10) shrinks
what the helper trains on, so the victim's accuracy is measured with the cut clipped as in
training (no noise): ``test_accuracy``. ``test_accuracy_unclipped`` is the composed model
without the clip, what evaluating the plain averaged model reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from splitnet.bench.attack_options import AttackOptions
from splitnet.bench.split_training import CutHooks, Release, cut_settings, release, train_split
from splitnet.learning.batches import epoch_batches
from splitnet.learning.data import load_dataset
from splitnet.learning.evaluation import evaluate
from splitnet.learning.models import build_partitions, compose

__all__ = ["AUX_FRACTION", "reconstruction_mse", "run_inversion"]

AUX_FRACTION = 1 / 3


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class _Apply(nn.Module):
    """A release as a layer: the cut, clipped as in training, for evaluation (no noise)."""

    def __init__(self, function: Release) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def reconstruction_mse(aux_codes: torch.Tensor, aux_x: torch.Tensor, codes: torch.Tensor,
                       x: torch.Tensor, epochs: int, seed: int) -> float:
    """Train a decoder on (``aux_codes`` -> ``aux_x``); return its MSE on (``codes``, ``x``)."""
    torch.manual_seed(seed)
    width = aux_codes[0].numel()
    decoder = nn.Sequential(nn.Flatten(), nn.Linear(width, 256), nn.ReLU(),
                            nn.Linear(256, x[0].numel()), nn.Tanh())
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    targets = aux_x.reshape(len(aux_x), -1)
    for _ in range(epochs):
        for index in epoch_batches(len(aux_x), 64, generator):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(decoder(aux_codes[index]), targets[index])
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float(nn.functional.mse_loss(decoder(codes), x.reshape(len(x), -1)))


def run_inversion(opts: AttackOptions,
                  progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train the victim once without protection and once per sigma; return one row each."""
    settings = cut_settings(opts.seed)
    dataset = load_dataset(settings.training, settings.data)
    order = torch.from_numpy(np.random.default_rng(opts.seed).permutation(len(dataset.train_y)))
    n_aux = int(len(order) * AUX_FRACTION)
    aux, victim = order[:n_aux], order[n_aux:]
    aux_x, test_x = dataset.train_x[aux], dataset.test_x
    mean_mse = float(((test_x - aux_x.mean(dim=0)) ** 2).mean())
    cases: list[tuple[float | None, Release]] = [(None, _identity)]
    cases += [(s, release(opts.clip, s, opts.seed * 1000 + i)) for i, s in enumerate(opts.sigmas)]
    rows = []
    for sigma, released in cases:
        parts = build_partitions("CNN", dataset.spec, opts.seed)
        train_split(parts, dataset.train_x[victim], dataset.train_y[victim], settings,
                    opts.epochs, CutHooks(activations=released))
        with torch.no_grad():
            aux_codes, codes = released(parts[0](aux_x)), released(parts[0](test_x))
        mse = reconstruction_mse(aux_codes, aux_x, codes, test_x, opts.decoder_epochs, opts.seed)
        clipped = _identity if sigma is None else release(opts.clip, 0.0, 0)
        metrics = evaluate(nn.Sequential(parts[0], _Apply(clipped), *parts[1:]), test_x,
                           dataset.test_y)
        plain = evaluate(compose(parts), test_x, dataset.test_y)
        rows.append({"sigma": sigma, "mse": mse, "mse_mean_image": mean_mse,
                     "test_accuracy": metrics["accuracy"], "test_f1": metrics["f1_macro"],
                     "test_accuracy_unclipped": plain["accuracy"]})
        if progress is not None:
            progress(f"invert: sigma={'off' if sigma is None else f'{sigma:g}'} MSE {mse:.4f}")
    return rows
