"""Weight keys: ``owner/partition/name`` for a replica, ``partition/name`` for an averaged model.

A client holds a replica of each (owner, partition) it runs; its states travel to the aggregator
keyed ``"{owner}/{partition}/{name}"``. The aggregator averages each partition over its owners and
sends back ``"{partition}/{name}"``. ``name`` is the key in the partition's ``state_dict``
(``layers.0.weight``: dots, never a slash), so the forms cannot be confused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

__all__ = ["STATE_KEY_FORM", "StateKey", "by_partition", "flatten"]

STATE_KEY_FORM = "'{owner}/{partition}/{name}' or '{partition}/{name}', e.g. '1/2/conv.weight'"
_KEY_RE = re.compile(r"(?:([1-9][0-9]{0,8})/)?([1-9][0-9]{0,8})/([^/]+)")


@dataclass(frozen=True, order=True)
class StateKey:
    """One tensor of a partition: of ``owner``'s replica, or of the averaged model (``None``).

    Keys order by owner, partition, name; compare keys of one form (a replica's with a
    replica's), as ``None`` does not order against an owner.
    """

    owner: int | None
    partition: int
    name: str

    def __str__(self) -> str:
        if self.owner is None:
            return f"{self.partition}/{self.name}"
        return f"{self.owner}/{self.partition}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> StateKey:
        """Parse ``"1/2/w"`` or ``"2/w"``; raise ValueError naming ``text`` otherwise."""
        match = _KEY_RE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"state key {text!r}: expected {STATE_KEY_FORM}")
        owner, partition, name = match.groups()
        return cls(None if owner is None else int(owner), int(partition), name)


def by_partition(state: Mapping[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """Split an averaged ``{"partition/name": tensor}`` dict into ``{partition: {name: t}}``."""
    parts: dict[int, dict[str, torch.Tensor]] = {}
    for text, tensor in state.items():
        key = StateKey.parse(text)
        if key.owner is not None:
            raise ValueError(f"state key {text!r}: expected an averaged key "
                             "'{partition}/{name}', got a replica's")
        parts.setdefault(key.partition, {})[key.name] = tensor
    return parts


def flatten(parts: Mapping[int, Mapping[str, torch.Tensor]],
            owner: int | None = None) -> dict[str, torch.Tensor]:
    """Return ``{str(StateKey(owner, partition, name)): tensor}``, in the order given."""
    return {str(StateKey(owner, partition, name)): tensor
            for partition, state in parts.items() for name, tensor in state.items()}
