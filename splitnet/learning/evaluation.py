"""Evaluate a whole model on held-out data: accuracy, macro F1 and loss."""

from __future__ import annotations

import torch
from sklearn.metrics import f1_score
from torch import nn

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 256) -> dict[str, float]:
    """Return ``{"accuracy", "f1_macro", "loss"}`` of ``model`` on ``(x, y)``."""
    model.eval()
    predictions, loss_sum = [], 0.0
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size])
        loss_sum += float(nn.functional.cross_entropy(
            logits, y[start:start + batch_size], reduction="sum"))
        predictions.append(logits.argmax(dim=1))
    predicted = torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)
    n = max(len(y), 1)
    return {
        "accuracy": float((predicted == y).sum()) / n,
        "f1_macro": float(f1_score(y.numpy(), predicted.numpy(), average="macro",
                                   zero_division=0)) if len(y) else 0.0,
        "loss": loss_sum / n,
    }
