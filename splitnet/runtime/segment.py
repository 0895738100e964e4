"""One segment: consecutive partitions of one owner's model on one runner, with one optimizer.

A runner keeps one segment per maximal run of an owner's partitions that the plan places on it
(all of them for an owner that offloads nothing). Its partitions form one autograd graph: forward
stashes the segment's input and output per unit (a batch, or a micro-batch of one: see
:mod:`splitnet.plan.units`); backward backpropagates through the whole segment at once and
returns the gradient for the previous runner. Splitting one segment into per-partition steps
would give the same numbers with more overhead (every boundary another graph, another optimizer
step).

Note: step before send. A segment steps once per batch, when the batch's last unit has
backpropagated and no other unit of it waits here, and *before* that unit's gradient is handed
back; so by the time an owner's batch completes every segment of that owner has applied it.
With one batch per owner in flight (``PIPELINE_DEPTH=1``) this is exactly plain SGD on the
owner's whole model; with micro-batches (``MICRO_BATCHES=m``, GPipe) the units' gradients are
summed first, each unit's loss weighted by its share of the batch, so the step equals the full
batch's up to float rounding (BatchNorm layers see each micro-batch's own statistics).

Note: weight stashing. With ``PIPELINE_DEPTH=k > 1`` an owner keeps up to ``k`` batches in
flight, and batch ``b`` runs forward *and* backward on the weights as they were once batch
``b - k`` was applied, on every segment alike (PipeDream's weight stashing with vertical sync):
the segment keeps those versions, computes each batch's gradient against its own version, and
applies the gradients to the latest weights in batch order. Each step thus uses a gradient that
is at most ``k - 1`` updates stale, and the result depends only on the seed, not on timing. The
owner's last segment is the exception: it runs a unit's forward, loss and backward in one step,
in batch order, so it always has the latest weights and is built with depth 1 (exact there).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from splitnet.learning.optim import make_optimizer
from splitnet.plan.units import batch_of, is_last

__all__ = ["Segment"]

_Stashed = tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]
"""A unit's input, output, and the stashed weights it ran on (None: the live weights)."""


class Segment:
    """Owner ``owner``'s partitions ``first .. first+len(modules)-1`` as run by one client."""

    def __init__(self, owner: int, first: int, modules: Sequence[nn.Module], optimizer: str,
                 lr: float, depth: int = 1, micro: int = 1) -> None:
        self.owner = owner
        self.first = first
        self.last = first + len(modules) - 1
        self.modules = {first + i: module for i, module in enumerate(modules)}
        self.module = nn.Sequential(*modules).train()
        self.optimizer = make_optimizer(optimizer, self.module.parameters(), lr)
        self.needs_input_grad = first > 1  # the first partition's input is raw data
        self.depth = depth
        self.micro = micro
        self._names = [name for name, _ in self.module.named_parameters()]
        self._params = [param for _, param in self.module.named_parameters()]
        self._stash: dict[int, _Stashed] = {}
        self._grads: dict[int, list[torch.Tensor | None]] = {}  # batch -> summed gradients
        self._finished: set[int] = set()  # batches fully backpropagated, not yet applied
        self._versions: dict[int, list[torch.Tensor]] = {}  # applied batch -> weights after it
        self._base = self._snapshot() if depth > 1 else []  # the weights as last loaded

    # -- weights of a unit (Note: weight stashing) ---------------------------------------------

    def _snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone().requires_grad_(True) for p in self._params]

    def _version(self, batch: int) -> list[torch.Tensor]:
        """Return the weights as they were once batch ``batch - depth`` was applied."""
        older = [b for b in self._versions if b <= batch - self.depth]
        return self._versions[max(older)] if older else self._base

    def _run(self, x: torch.Tensor, weights: list[torch.Tensor] | None) -> torch.Tensor:
        if weights is None:
            return self.module(x)
        return functional_call(self.module, dict(zip(self._names, weights, strict=True)), (x,))

    # -- steps ---------------------------------------------------------------------------------

    def forward(self, unit: int, x: torch.Tensor) -> torch.Tensor:
        """Run the forward of ``unit``; keep what backward needs; return the output."""
        x = x.detach()
        if self.needs_input_grad and x.is_floating_point():
            x.requires_grad_(True)
        weights = self._version(batch_of(unit, self.micro)) if self.depth > 1 else None
        out = self._run(x, weights)
        self._stash[unit] = (x, out, weights)
        return out.detach()

    def stashed(self, unit: int) -> torch.Tensor | None:
        """Return the output ``unit``'s forward stashed for its backward (None: none waits)."""
        kept = self._stash.get(unit)
        return None if kept is None else kept[1]

    def backward(self, unit: int, grad_out: torch.Tensor) -> torch.Tensor | None:
        """Backpropagate ``grad_out``, step if the batch is complete, return the input's grad."""
        x, out, weights = self._stash.pop(unit)
        grad = self._backprop(unit, x, out, weights, grad_out)
        self._after(unit)  # Note: step before send
        return grad

    def backward_loss(self, unit: int, labels: torch.Tensor,
                      share: float = 1.0) -> tuple[float, torch.Tensor | None]:
        """Compute the loss on the owner's labels and backpropagate it (the last segment).

        ``share`` weighs a micro-batch's mean loss by its part of the batch, so that the units'
        gradients sum to the batch's; the loss returned is the weighted one.
        """
        x, out, weights = self._stash.pop(unit)
        loss = nn.functional.cross_entropy(out, labels)
        if share != 1.0:
            loss = loss * share
        grad = self._backprop(unit, x, loss, weights, None)
        self._after(unit)  # Note: step before send
        return float(loss.detach()), grad

    def _backprop(self, unit: int, x: torch.Tensor, out: torch.Tensor,
                  weights: list[torch.Tensor] | None,
                  grad_out: torch.Tensor | None) -> torch.Tensor | None:
        if weights is None:  # the live weights: gradients sum on the parameters
            if self.micro == 1:
                self.optimizer.zero_grad(set_to_none=True)
            out.backward(grad_out)
            return x.grad if x.requires_grad else None
        inputs = [*weights, x] if x.requires_grad else list(weights)
        grads = torch.autograd.grad(out, inputs, grad_out, allow_unused=True)
        batch = batch_of(unit, self.micro)
        summed = self._grads.setdefault(batch, [None] * len(weights))
        for i, g in enumerate(grads[:len(weights)]):
            before = summed[i]
            if g is not None:
                summed[i] = g if before is None else before + g
        return grads[-1] if x.requires_grad else None

    def _after(self, unit: int) -> None:
        """Step once the batch of ``unit`` is complete here (its last unit, nothing of it left)."""
        batch = batch_of(unit, self.micro)
        if not is_last(unit, self.micro) or any(batch_of(u, self.micro) == batch
                                                for u in self._stash):
            return
        if self.depth == 1:
            self.optimizer.step()
            if self.micro > 1:
                self.optimizer.zero_grad(set_to_none=True)
            return
        self._finished.add(batch)
        waiting = min((batch_of(u, self.micro) for u in self._stash), default=None)
        for done in sorted(self._finished):  # applied in batch order
            if waiting is not None and done > waiting:
                break
            self._apply(done)

    def _apply(self, batch: int) -> None:
        for param, grad in zip(self._params, self._grads.pop(batch), strict=True):
            param.grad = grad
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._finished.discard(batch)
        self._versions[batch] = self._snapshot()
        # A later forward is of batch + 1 or after: it needs no version older than this floor.
        floor = max((b for b in self._versions if b <= batch + 1 - self.depth), default=None)
        for old in [b for b in self._versions if floor is not None and b < floor]:
            del self._versions[old]

    # -- weights in and out --------------------------------------------------------------------

    def state(self, partition: int) -> dict[str, torch.Tensor]:
        """Return one partition's parameters and buffers."""
        return {k: v.detach().clone() for k, v in self.modules[partition].state_dict().items()}

    def load(self, partition: int, state: dict[str, torch.Tensor]) -> None:
        """Replace one partition's weights (the optimizer state is kept)."""
        self.modules[partition].load_state_dict(state)
        if self.depth > 1:  # a new round starts from these weights
            self._versions.clear()
            self._base = self._snapshot()
