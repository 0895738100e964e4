"""Label leakage through the gradient the owner sends back (Li et al., ICLR 2022).

The task is binary and imbalanced, as in the paper: digit 0 (the positive, minority class,
about a tenth of DIGITS) against the rest. The helper records, in the last training epoch, the
gradient it receives for each sample (with respect to its output) and scores the sample by

- **norm**: the gradient's L2 norm (a misclassified minority sample has a larger loss and so a
  larger gradient);
- **cosine**: the cosine similarity with the gradient of one sample the attacker knows to be
  positive (for a binary last layer, every gradient points along ±(w1 - w0), its sign set by
  the label).

Attack AUC is the ROC AUC of the score for the positive class; 0.5 is a coin toss, 1.0 reads
every label. The table reports both and their maximum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from sklearn.metrics import roc_auc_score

from splitnet.bench.attack_options import AttackOptions
from splitnet.bench.split_training import (
    CutHooks,
    Release,
    cut_settings,
    release,
    train_split,
)
from splitnet.learning.data import load_dataset
from splitnet.learning.evaluation import evaluate
from splitnet.learning.models import InputSpec, build_partitions, compose

__all__ = ["POSITIVE_DIGIT", "leak_scores", "run_label_leak"]

POSITIVE_DIGIT = 0


class _Seen:
    """What the helper saw, per epoch: each batch's gradient, and its labels."""

    def __init__(self) -> None:
        self.gradients: dict[int, list[torch.Tensor]] = {}
        self.labels: dict[int, list[torch.Tensor]] = {}

    def add(self, gradient: torch.Tensor, labels: torch.Tensor, epoch: int) -> None:
        self.gradients.setdefault(epoch, []).append(gradient.detach().clone())
        self.labels.setdefault(epoch, []).append(labels.clone())

    def scores(self) -> list[dict[str, float]]:
        """Return :func:`leak_scores` of each epoch, in order."""
        return [leak_scores(torch.cat(self.gradients[e]), torch.cat(self.labels[e]))
                for e in sorted(self.gradients)]


def leak_scores(gradients: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Return the norm and cosine attacks' AUCs on per-sample ``gradients`` (rows), 1 = positive.

    The cosine attack's reference is the first positive sample's gradient; that sample is
    left out of its score.
    """
    if not 0 < int(labels.sum()) < len(labels):
        raise ValueError("leak_scores: labels must hold both classes (1 = positive, 0)")
    flat = gradients.reshape(len(gradients), -1).double()
    if not bool(torch.isfinite(flat).all()):  # Note: diverged
        return {"auc_norm": math.nan, "auc_cosine": math.nan, "auc": math.nan}
    truth = labels.numpy()
    norm_auc = float(roc_auc_score(truth, flat.norm(dim=1).numpy()))
    positives = torch.nonzero(labels == 1).flatten()
    reference = int(positives[0])
    cosine = torch.nn.functional.cosine_similarity(flat, flat[reference:reference + 1], dim=1)
    keep = torch.arange(len(labels)) != reference
    cosine_auc = float(roc_auc_score(truth[keep.numpy()], cosine[keep].numpy()))
    return {"auc_norm": norm_auc, "auc_cosine": cosine_auc, "auc": max(norm_auc, cosine_auc)}


def run_label_leak(opts: AttackOptions,
                   progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train the binary split model without protection and once per sigma; return one row each.

    A row's AUCs are the last epoch's; ``auc_by_epoch`` has the attack AUC of every epoch.
    """
    settings = cut_settings(opts.seed)
    dataset = load_dataset(settings.training, settings.data)
    train_y = (dataset.train_y == POSITIVE_DIGIT).long()
    test_y = (dataset.test_y == POSITIVE_DIGIT).long()
    spec = InputSpec(tuple(dataset.spec.shape), 2)
    cases: list[tuple[float | None, Release | None]] = [(None, None)]
    cases += [(s, release(opts.clip, s, opts.seed * 1000 + i)) for i, s in enumerate(opts.sigmas)]
    rows = []
    for sigma, released in cases:
        seen = _Seen()
        parts = build_partitions("CNN", spec, opts.seed)
        hooks = CutHooks(observe=seen.add)
        if released is not None:
            hooks.gradients = released
        train_split(parts, dataset.train_x, train_y, settings, opts.epochs, hooks)
        by_epoch = seen.scores()
        row: dict[str, Any] = {"sigma": sigma, **by_epoch[-1],
                               "auc_by_epoch": [s["auc"] for s in by_epoch]}
        metrics = evaluate(compose(parts), dataset.test_x, test_y)
        row.update(test_accuracy=metrics["accuracy"], test_f1=metrics["f1_macro"])
        rows.append(row)
        if progress is not None:
            progress(f"label-leak: sigma={'off' if sigma is None else f'{sigma:g}'} "
                     f"AUC {row['auc']:.3f}")
    return rows
