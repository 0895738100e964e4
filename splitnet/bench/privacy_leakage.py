"""The leakage columns of ``splitnet bench privacy``: both attacks at one noise multiplier."""

from __future__ import annotations

from pathlib import Path

from splitnet.bench.attack_options import attack_options
from splitnet.bench.inversion import run_inversion
from splitnet.bench.label_leak import run_label_leak

__all__ = ["leakage_at"]


def leakage_at(sigma: float, out: Path, *, quick: bool = False,
               seed: int = 42) -> dict[str, float]:
    """Return the label-leak AUC and the inversion MSE with noise multiplier ``sigma``.

    Each attack's own clip (Note: clip per attack, in attack_options.py) matches the runtime's
    ``DP_GRADIENT_CLIP`` and ``DP_CLIP`` defaults; ``sigma`` 0 means no protection at all.
    """
    wanted = sigma if sigma > 0 else None
    leak = attack_options("label-leak", out, sigmas=f"{sigma:g}", seed=seed, quick=quick)
    invert = attack_options("invert", out, sigmas=f"{sigma:g}", seed=seed, quick=quick)
    leak_row = next(r for r in run_label_leak(leak) if r["sigma"] == wanted)
    invert_row = next(r for r in run_inversion(invert) if r["sigma"] == wanted)
    return {"label_leak_auc": float(leak_row["auc"]), "inversion_mse": float(invert_row["mse"]),
            "inversion_mse_mean_image": float(invert_row["mse_mean_image"])}
