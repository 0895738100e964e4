"""One model's small ``splitnet local`` run, as the benchmarks that compare settings use it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Case", "write_env"]


@dataclass(frozen=True)
class Case:
    """One model's run: dataset, clients, rounds, epochs, batch size, learning rate."""

    model: str
    dataset: str
    clients: int = 3
    rounds: int = 4
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05


def write_env(case: Case, lists: Sequence[Sequence[str]], path: Path,
              extra: Sequence[str] = ()) -> Path:
    """Write ``case``'s settings file with the task ``lists`` (and ``extra`` lines) to ``path``."""
    lines = [f"NUM_CLIENTS={case.clients}", f"CURRENT_MODEL={case.model}",
             f"CURRENT_DATASET={case.dataset}", f"BATCH_SIZE={case.batch_size}",
             f"TRAINING_NUM_ROUNDS={case.rounds}", f"TRAINING_NUM_EPOCHS={case.epochs}",
             f"LEARNING_RATE={case.learning_rate}", "SEED=42", "METRICS_PORT=0", *extra,
             f"SIMULATION_STAGES_CLIENTS={json.dumps([list(tasks) for tasks in lists])}"]
    path.write_text("\n".join(lines) + "\n")
    return path
