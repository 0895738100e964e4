"""How many threads torch uses in this process: ``TORCH_THREADS``, ``TORCH_INTEROP_THREADS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from splitnet.config.settings import OutputSettings

__all__ = ["apply_client_threads", "apply_threads", "thread_label"]


def apply_threads(intra: int, interop: int) -> None:
    """Set torch's intra-op and inter-op thread counts (0 leaves torch's default).

    Call it before any torch work: torch refuses to change the inter-op count once it ran.
    """
    if interop:
        torch.set_num_interop_threads(interop)
    if intra:
        torch.set_num_threads(intra)


def apply_client_threads(output: OutputSettings) -> int:
    """Set this process's threads as a client sets its own; return the intra-op count it uses.

    A client (``splitnet run``) applies ``TORCH_THREADS`` and ``TORCH_INTEROP_THREADS`` (0, the
    default: torch's own count) before any torch work, and its steps run at the count that
    results (its compute thread copies it: Note: one thread count, in
    :mod:`splitnet.runtime.interpreter`). ``splitnet profile`` and ``plan --auto`` call this
    too, so they time at the count a client computes with.
    """
    apply_threads(output.torch_threads, output.torch_interop_threads)
    return torch.get_num_threads()


def thread_label() -> str:
    """Name the counts in effect, e.g. ``"2 intra-op, 1 inter-op threads"``."""
    return (f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op "
            "threads")
