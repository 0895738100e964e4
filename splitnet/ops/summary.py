"""The line a training command prints at the end: accuracy, F1, loss, speed, where results are."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["summary_line"]


def summary_line(summary: Mapping[str, object], where: Path) -> str:
    """Return the one-line result of a run from its ``summary.json`` data."""
    return (f"test accuracy {summary['test_accuracy']:.4f}, macro F1 "
            f"{summary['f1_macro']:.4f}, test loss {summary['test_loss']:.4f}; "
            f"{summary['samples_per_second']} samples/s; {summary['total_seconds']}s in all; "
            f"results in {where}")
