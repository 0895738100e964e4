"""BERT built from a configuration (no download), partitioned.

Partitions: embeddings, one per encoder layer, then pooler + classifier.

Module names mirror the published checkpoints (``embeddings.word_embeddings``,
``encoder.layer.N.attention.self.query``, ``pooler.dense``), so weights load from a local
safetensors file when ``BERT_PRETRAINED`` names one; nothing is fetched from a hub.

Note: mask channel. A partition passes one tensor on. The encoder layers need the attention
mask, so the embeddings partition appends it as one extra feature channel (``[B, T, H + 1]``),
each encoder layer reads it, and passes it through unchanged; its gradient is zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from splitnet.config.catalog import BERT_LAYERS

__all__ = ["BERT_SIZES", "BertConfig", "bert_partitions", "load_pretrained"]


@dataclass(frozen=True)
class BertConfig:
    """The published BERT shape parameters."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab: int = 2


BERT_SIZES = {
    "tiny": BertConfig(2, 128, 2, 512),
    "mini": BertConfig(4, 256, 4, 1024),
    "small": BertConfig(4, 512, 8, 2048),
    "medium": BertConfig(8, 512, 8, 2048),
    "base": BertConfig(12, 768, 12, 3072),
    "large": BertConfig(24, 1024, 16, 4096),
}
assert {k: v.layers for k, v in BERT_SIZES.items()} == BERT_LAYERS


class Embeddings(nn.Module):
    """Token, position and segment embeddings; appends the attention mask (Note: mask channel)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.dropout = nn.Dropout(0.0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Map token ids ``[B, T]`` to ``[B, T, H + 1]`` (hidden states and mask)."""
        ids = ids.long()
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        hidden = (self.word_embeddings(ids) + self.position_embeddings(positions)
                  + self.token_type_embeddings(torch.zeros_like(ids)))
        hidden = self.dropout(self.LayerNorm(hidden))
        mask = (ids != 0).to(hidden.dtype).unsqueeze(-1)
        return torch.cat([hidden, mask], dim=-1)


class _SelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(cfg.hidden, cfg.hidden)
        self.value = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        d = h // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d).transpose(1, 2)

        scores = split(self.query(x)) @ split(self.key(x)).transpose(-1, -2) / math.sqrt(d)
        scores = scores + (1.0 - mask.view(b, 1, 1, t)) * torch.finfo(x.dtype).min
        context = scores.softmax(-1) @ split(self.value(x))
        return context.transpose(1, 2).reshape(b, t, h)


class _DenseNorm(nn.Module):
    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(inp, out)
        self.LayerNorm = nn.LayerNorm(out, eps=1e-12)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(cfg)
        self.output = _DenseNorm(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class EncoderLayer(nn.Module):
    """One transformer encoder layer on ``[B, T, H + 1]`` (Note: mask channel)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(cfg)
        self.intermediate = _Intermediate(cfg)
        self.output = _DenseNorm(cfg.intermediate, cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer; the mask channel passes through."""
        hidden, mask = x[..., :-1], x[..., -1]
        attended = self.attention(hidden, mask)
        out = self.output(self.intermediate(attended), attended)
        return torch.cat([out, x[..., -1:]], dim=-1)


class _Pooler(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x))


class Head(nn.Module):
    """Pooler (first token) and classifier."""

    def __init__(self, cfg: BertConfig, num_classes: int) -> None:
        super().__init__()
        self.pooler = _Pooler(cfg)
        self.classifier = nn.Linear(cfg.hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify from the first token's hidden state."""
        return self.classifier(self.pooler(x[:, 0, :-1]))


def bert_partitions(size: str, vocab_size: int, seq_len: int, num_classes: int,
                    pretrained: str | None = None) -> list[nn.Module]:
    """Return [embeddings, layer 1, …, layer L, head] for BERT ``size``."""
    base = BERT_SIZES[size]
    cfg = BertConfig(base.layers, base.hidden, base.heads, base.intermediate,
                     vocab_size=vocab_size or base.vocab_size,
                     max_positions=max(base.max_positions, seq_len))
    parts: list[nn.Module] = [Embeddings(cfg), *(EncoderLayer(cfg) for _ in range(cfg.layers)),
                              Head(cfg, num_classes)]
    for part in parts:
        for m in part.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
    if pretrained:
        load_pretrained(parts, Path(pretrained))
    return parts


def load_pretrained(parts: list[nn.Module], path: Path) -> None:
    """Load published BERT weights (safetensors, ``bert.``-prefixed names or not) into ``parts``."""
    state = {k.removeprefix("bert."): v for k, v in load_file(str(path)).items()}
    layers = len(parts) - 2
    targets: list[tuple[nn.Module, str]] = [(parts[0], "embeddings.")]
    targets += [(parts[i + 1], f"encoder.layer.{i}.") for i in range(layers)]
    targets.append((parts[-1], ""))
    for module, prefix in targets:
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if prefix == "":
            own = {k: v for k, v in own.items() if k.startswith("pooler.")}
        module.load_state_dict(own, strict=False)
