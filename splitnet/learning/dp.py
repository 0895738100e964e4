"""Differential privacy at the cut: per-sample clipping, Gaussian noise, and the privacy spent.

:func:`clip_and_noise` bounds each sample's tensor (every dimension but the first, the batch)
to L2 norm ``clip`` and adds Gaussian noise of standard deviation ``noise_multiplier * clip``:
the Gaussian mechanism on one sample's activation (or gradient) with sensitivity ``clip``.

:func:`epsilon` is the privacy spent by ``releases`` such releases of every sample (no
subsampling: each sample crosses the cut once per epoch), from Google's ``dp-accounting`` RDP
accountant, at ``delta``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["clip_and_noise", "epsilon"]


def clip_and_noise(x: torch.Tensor, clip: float, noise_multiplier: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Return ``x``, each sample clipped to L2 norm ``clip``, plus N(0, (multiplier * clip)^2)."""
    if x.dim() == 0 or x.shape[0] == 0:
        return x
    flat = x.detach().reshape(x.shape[0], -1).to(torch.float32)
    norms = flat.norm(dim=1, keepdim=True)
    scale = torch.clamp(clip / (norms + 1e-12), max=1.0)
    clipped = flat * scale
    if noise_multiplier > 0:
        noise = torch.randn(clipped.shape, generator=generator, dtype=torch.float32)
        clipped = clipped + noise * (noise_multiplier * clip)
    return clipped.reshape(x.shape).to(x.dtype)


def epsilon(noise_multiplier: float, releases: int, delta: float) -> float:
    """Return ε at ``delta`` after ``releases`` Gaussian releases (inf without noise)."""
    if releases <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    import dp_accounting  # a light import, but only where privacy is asked for
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), releases)
    return float(accountant.get_epsilon(delta))
