"""What models and datasets exist: partition counts and input kinds, without importing torch.

The planner needs P (the partition count) to validate a configuration; it must not pay for
importing torch to learn it. ``splitnet.learning.models`` builds the modules and a test checks
that the counts here match the modules built there.
"""

from __future__ import annotations

__all__ = [
    "BERT_LAYERS",
    "DATASET_KINDS",
    "MODEL_KINDS",
    "model_names",
    "num_partitions",
]

# BERT: embeddings + one partition per encoder layer + pooler/classifier.
BERT_LAYERS = {"tiny": 2, "mini": 4, "small": 4, "medium": 8, "base": 12, "large": 24}

_FIXED_PARTITIONS = {"CNN": 4, "RESNET18": 10, "RESNET50": 18}

MODEL_KINDS = {"CNN": "image", "RESNET18": "image", "RESNET50": "image", "BERT": "text"}

DATASET_KINDS = {
    "DIGITS": "image",
    "MNIST": "image",
    "CIFAR10": "image",
    "CIFAR100": "image",
    "AG_NEWS": "text",
    "IMDB": "text",
    "SYNTHETIC": "any",
}


def model_names() -> list[str]:
    """Return the model names ``CURRENT_MODEL`` accepts."""
    return sorted(MODEL_KINDS)


def num_partitions(model: str, bert_model: str = "tiny") -> int:
    """Return the partition count P of ``model`` (``bert_model`` picks the BERT size)."""
    if model == "BERT":
        return BERT_LAYERS[bert_model] + 2
    return _FIXED_PARTITIONS[model]
