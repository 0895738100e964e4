"""One replica: a partition of one owner's model on its runner, with its own optimizer.

Forward stashes the input (and the output's graph) per batch; backward uses it, steps the
optimizer, and returns the gradient for the previous partition. The step happens *before* the
gradient is handed back, so by the time an owner's batch completes every replica of that owner
has applied it (Note: step before send). With one batch per owner in flight this is exactly plain
SGD on the owner's whole model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["Replica", "make_optimizer"]


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Return the optimizer ``OPTIMIZER`` names."""
    if name == "ADAM":
        return torch.optim.Adam(params, lr=lr)
    if name == "ADAMW":
        return torch.optim.AdamW(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


class Replica:
    """Owner ``owner``'s partition ``partition`` as run by one client."""

    def __init__(self, owner: int, partition: int, module: nn.Module, optimizer: str,
                 lr: float, needs_input_grad: bool) -> None:
        self.owner = owner
        self.partition = partition
        self.module = module
        self.optimizer = make_optimizer(optimizer, module.parameters(), lr)
        self.needs_input_grad = needs_input_grad
        self._stash: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, batch: int, x: torch.Tensor) -> torch.Tensor:
        """Run the forward of ``batch``; keep what backward needs; return the output."""
        self.module.train()
        x = x.detach()
        if self.needs_input_grad and x.is_floating_point():
            x.requires_grad_(True)
        out = self.module(x)
        self._stash[batch] = (x, out)
        return out.detach()

    def backward(self, batch: int, grad_out: torch.Tensor) -> torch.Tensor | None:
        """Backpropagate ``grad_out``, step, and return the gradient of this replica's input."""
        x, out = self._stash.pop(batch)
        self.optimizer.zero_grad(set_to_none=True)
        out.backward(grad_out)
        self.optimizer.step()  # Note: step before send
        return x.grad if x.requires_grad else None

    def backward_loss(self, batch: int, labels: torch.Tensor) -> tuple[float, torch.Tensor | None]:
        """Compute the loss on the owner's labels and backpropagate it (the last partition)."""
        x, out = self._stash.pop(batch)
        loss = nn.functional.cross_entropy(out, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()  # Note: step before send
        return float(loss.detach()), (x.grad if x.requires_grad else None)

    def state(self) -> dict[str, torch.Tensor]:
        """Return the replica's parameters and buffers."""
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the replica's weights (the optimizer state is kept)."""
        self.module.load_state_dict(state)
