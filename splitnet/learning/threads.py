"""How many threads torch uses in this process: ``TORCH_THREADS``, ``TORCH_INTEROP_THREADS``."""

from __future__ import annotations

import torch

__all__ = ["apply_threads", "thread_label"]


def apply_threads(intra: int, interop: int) -> None:
    """Set torch's intra-op and inter-op thread counts (0 leaves torch's default).

    Call it before any torch work: torch refuses to change the inter-op count once it ran.
    """
    if interop:
        torch.set_num_interop_threads(interop)
    if intra:
        torch.set_num_threads(intra)


def thread_label() -> str:
    """Name the counts in effect, e.g. ``"2 intra-op, 1 inter-op threads"``."""
    return (f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op "
            "threads")
