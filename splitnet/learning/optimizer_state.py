"""An optimizer's state as named tensors plus JSON: what a checkpoint stores, never a pickle.

``torch.optim.Optimizer.state_dict()`` mixes tensors (Adam's ``exp_avg``, ``exp_avg_sq`` and
``step``) with plain values (the param groups' ``lr``, ``betas``...). :func:`flatten_optimizer`
splits it: every tensor becomes ``"{prefix}{param}/{name}"``, everything else goes into a
JSON-ready dict. :func:`restore_optimizer` puts both back, bit for bit. SGD without momentum keeps
no state, so only its param groups are stored.

Note: tuples in JSON. JSON has no tuple: ``betas`` comes back as a list. The restored groups take
the type of the fresh optimizer's value for each key, so a tuple stays a tuple.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["flatten_optimizer", "restore_optimizer"]

_SCALARS = (bool, int, float, str, type(None))


def flatten_optimizer(optimizer: torch.optim.Optimizer,
                      prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return ``optimizer``'s state tensors (named under ``prefix``) and its JSON-ready rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{param}/{name}"] = value.detach().clone().contiguous()
            elif isinstance(value, _SCALARS):
                scalars.setdefault(str(param), {})[name] = value
            else:
                raise ValueError(f"optimizer state {param}/{name} is a {type(value).__name__}; "
                                 "expected a tensor or a number")
    groups = [{key: list(value) if isinstance(value, tuple) else value
               for key, value in group.items()} for group in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, prefix: str,
                      tensors: Mapping[str, torch.Tensor], rest: Mapping[str, Any]) -> None:
    """Load what :func:`flatten_optimizer` returned into ``optimizer`` (same parameters)."""
    fresh = optimizer.state_dict()["param_groups"]
    saved = rest["param_groups"]
    if not isinstance(saved, list) or len(saved) != len(fresh):
        raise ValueError(f"optimizer {prefix!r}: {len(fresh)} param group(s) expected")
    groups = []
    for ours, theirs in zip(fresh, saved, strict=True):
        if not isinstance(theirs, dict) or set(theirs) != set(ours):
            raise ValueError(f"optimizer {prefix!r}: its param groups hold other settings")
        groups.append({key: tuple(value) if isinstance(ours[key], tuple) else value
                       for key, value in theirs.items()})  # Note: tuples in JSON
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            param, _, name = key[len(prefix):].partition("/")
            state.setdefault(int(param), {})[name] = value
    for param, entries in dict(rest.get("scalars", {})).items():
        state.setdefault(int(param), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": groups})
