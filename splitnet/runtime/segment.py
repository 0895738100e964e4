"""One segment: consecutive partitions of one owner's model on one runner, with one optimizer.

A runner keeps one segment per maximal run of an owner's partitions that the plan places on it
(all of them for an owner that offloads nothing). Its partitions form one autograd graph: forward
stashes the segment's input and output per batch; backward backpropagates through the whole
segment at once, steps, and returns the gradient for the previous runner. Splitting one segment
into per-partition steps would give the same numbers with more overhead (every boundary another
graph, another optimizer step). The step happens *before* the gradient is handed back, so by the
time an owner's batch completes every segment of that owner has applied it (Note: step before
send). With one batch per owner in flight this is exactly plain SGD on the owner's whole model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from splitnet.learning.optim import make_optimizer

__all__ = ["Segment"]


class Segment:
    """Owner ``owner``'s partitions ``first .. first+len(modules)-1`` as run by one client."""

    def __init__(self, owner: int, first: int, modules: Sequence[nn.Module], optimizer: str,
                 lr: float) -> None:
        self.owner = owner
        self.first = first
        self.last = first + len(modules) - 1
        self.modules = {first + i: module for i, module in enumerate(modules)}
        self.module = nn.Sequential(*modules).train()
        self.optimizer = make_optimizer(optimizer, self.module.parameters(), lr)
        self.needs_input_grad = first > 1  # the first partition's input is raw data
        self._stash: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, batch: int, x: torch.Tensor) -> torch.Tensor:
        """Run the forward of ``batch``; keep what backward needs; return the output."""
        x = x.detach()
        if self.needs_input_grad and x.is_floating_point():
            x.requires_grad_(True)
        out = self.module(x)
        self._stash[batch] = (x, out)
        return out.detach()

    def stashed(self, batch: int) -> torch.Tensor | None:
        """Return the output ``batch``'s forward stashed for its backward (None: none waits)."""
        kept = self._stash.get(batch)
        return None if kept is None else kept[1]

    def backward(self, batch: int, grad_out: torch.Tensor) -> torch.Tensor | None:
        """Backpropagate ``grad_out``, step, and return the gradient of the segment's input."""
        x, out = self._stash.pop(batch)
        self.optimizer.zero_grad(set_to_none=True)
        out.backward(grad_out)
        self.optimizer.step()  # Note: step before send
        return x.grad if x.requires_grad else None

    def backward_loss(self, batch: int, labels: torch.Tensor) -> tuple[float, torch.Tensor | None]:
        """Compute the loss on the owner's labels and backpropagate it (the last segment)."""
        x, out = self._stash.pop(batch)
        loss = nn.functional.cross_entropy(out, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()  # Note: step before send
        return float(loss.detach()), (x.grad if x.requires_grad else None)

    def state(self, partition: int) -> dict[str, torch.Tensor]:
        """Return one partition's parameters and buffers."""
        return {k: v.detach().clone() for k, v in self.modules[partition].state_dict().items()}

    def load(self, partition: int, state: dict[str, torch.Tensor]) -> None:
        """Replace one partition's weights (the optimizer state is kept)."""
        self.modules[partition].load_state_dict(state)
