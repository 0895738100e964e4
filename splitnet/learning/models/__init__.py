"""Partitioned models: each model is a list of P ``nn.Module`` whose composition is the model.

``build_partitions`` is deterministic from the seed, so every client builds identical initial
weights without talking. Partition counts are declared in :mod:`splitnet.config.catalog` (no torch).
"""

from __future__ import annotations

import torch
from torch import nn

from splitnet.learning.models.bert import bert_partitions
from splitnet.learning.models.cnn import cnn_partitions
from splitnet.learning.models.resnet import resnet_partitions

__all__ = ["InputSpec", "build_partitions", "compose"]


class InputSpec:
    """What a model needs to know about its data: input shape and class count."""

    def __init__(self, shape: tuple[int, ...], num_classes: int, vocab_size: int = 0) -> None:
        self.shape = shape
        self.num_classes = num_classes
        self.vocab_size = vocab_size


def build_partitions(model: str, spec: InputSpec, seed: int, bert_model: str = "tiny",
                     pretrained: str | None = None) -> list[nn.Module]:
    """Build ``model``'s partitions for inputs described by ``spec``, seeded by ``seed``."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if model == "CNN":
            parts = cnn_partitions(spec.shape, spec.num_classes)
        elif model in ("RESNET18", "RESNET50"):
            parts = resnet_partitions(model, spec.shape, spec.num_classes)
        elif model == "BERT":
            parts = bert_partitions(bert_model, spec.vocab_size, spec.shape[-1], spec.num_classes,
                                    pretrained)
        else:
            raise ValueError(f"unknown model {model!r}")
    finally:
        torch.random.set_rng_state(generator_state)
    return parts


def compose(parts: list[nn.Module]) -> nn.Sequential:
    """Return the whole model as one module (shares parameters with ``parts``)."""
    return nn.Sequential(*parts)
