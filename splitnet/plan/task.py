"""A task: one stage of one owner's pipeline, written ``{owner}_{stage}`` (``"4_3"``).

Stage ``s <= P`` is the forward of partition ``s``; stage ``s > P`` is the backward of partition
``2P + 1 - s``. Stage ``s`` and stage ``2P + 1 - s`` form a pair and run on one client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TASK_FORM", "Task", "TaskSyntaxError", "pair_stage", "partition_of", "stage_of"]

TASK_FORM = "'{owner}_{stage}', e.g. '1_3'"
_TASK_RE = re.compile(r"([1-9][0-9]{0,8})_([1-9][0-9]{0,8})")


class TaskSyntaxError(ValueError):
    """A string is not of the form ``{owner}_{stage}`` with positive integers."""


@dataclass(frozen=True, order=True)
class Task:
    """One stage of one owner's pipeline."""

    owner: int
    stage: int

    def __str__(self) -> str:
        return f"{self.owner}_{self.stage}"

    @classmethod
    def parse(cls, text: str) -> Task:
        """Parse ``"4_3"``; raise :class:`TaskSyntaxError` naming the expected form otherwise."""
        match = _TASK_RE.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise TaskSyntaxError(f"expected {TASK_FORM}")
        return cls(int(match.group(1)), int(match.group(2)))

    def partition(self, num_partitions: int) -> int:
        """Return the partition (1..P) this stage computes."""
        return partition_of(self.stage, num_partitions)

    def is_forward(self, num_partitions: int) -> bool:
        """Return True for a forward stage (1..P)."""
        return self.stage <= num_partitions


def partition_of(stage: int, num_partitions: int) -> int:
    """Return the partition that ``stage`` computes, forward or backward."""
    return stage if stage <= num_partitions else 2 * num_partitions + 1 - stage


def stage_of(partition: int, num_partitions: int, *, forward: bool) -> int:
    """Return the stage of ``partition``'s forward (or backward)."""
    return partition if forward else 2 * num_partitions + 1 - partition


def pair_stage(stage: int, num_partitions: int) -> int:
    """Return the stage paired with ``stage`` (forward ↔ backward of one partition)."""
    return 2 * num_partitions + 1 - stage
