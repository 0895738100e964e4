"""Round numbers: training rounds are ``0 .. R-1``; the initial model precedes round 0.

The aggregator sends every client its initial weights before any training: that model belongs to
round :data:`INITIAL_ROUND`, so "the model of round r" is the averaged model after round r for
``r >= 0`` and the initial model for ``r == INITIAL_ROUND``.
"""

from __future__ import annotations

__all__ = ["INITIAL_ROUND"]

INITIAL_ROUND = -1
"""The round of the initial model: it precedes round 0 (no task runs before it is loaded)."""
