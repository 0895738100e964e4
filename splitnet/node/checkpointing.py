"""Round checkpoints of a running client: taken at each round boundary, written off the loop.

When round r's averaged model is loaded into the replicas (and before round r+1 starts here),
:meth:`Checkpointer.take` copies the replicas' weights and optimizer states, and notes the next
round and each owner's latest batch that ran here (``extra``: ``next_round``,
``latest_batches``; batch numbers go on across rounds, the batch order of a round depends only
on ``SEED``, the owner and the round, :mod:`splitnet.learning.batches`); a single writer
thread then writes them (:class:`~splitnet.learning.checkpoints.CheckpointStore`) while round
r+1 trains. The aggregator's checkpoint also holds the averaged model (``averaged/...``) and the
result rows up to round r, so it is written once round r is recorded (Note: evaluation off the
critical path, :mod:`splitnet.node.recorder`).

Note: run of a resume. Every checkpoint names the run it belongs to (``run_id``): a resumed
aggregator goes on in that run's folder (:mod:`splitnet.node.resume`).

Note: rows of the round. The aggregator loads round r's model (and so takes the checkpoint)
just before it hands round r to the recorder, in the same step of the event loop; the write
waits for the recorder, and once more if round r's row is not in yet.

Note: a checkpoint is best effort. A write that fails (disk full, folder gone) is one warning
line and training goes on: a missing checkpoint costs a longer resume, never the run.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import torch
from safetensors.torch import load as load_safetensors

from splitnet.learning.checkpoints import CheckpointStore
from splitnet.node.recorder import Recorder
from splitnet.runtime import Interpreter, Replicas
from splitnet.runtime.snapshot import replicas_snapshot
from splitnet.telemetry.results import ResultsWriter

__all__ = ["AVERAGED", "Checkpointer"]

log = logging.getLogger("splitnet.node")

AVERAGED = "averaged/"
"""Prefix of the averaged model's tensors (``averaged/{partition}/{name}``), aggregator only."""


class Checkpointer:
    """Takes client ``store.client``'s checkpoint at each round boundary and writes it."""

    def __init__(self, store: CheckpointStore, replicas: Replicas, interpreter: Interpreter,
                 recorder: Recorder | None = None, results: ResultsWriter | None = None) -> None:
        self.store = store
        self._results = results  # the run id goes into every checkpoint (Note: run of a resume)
        self._replicas = replicas
        self._interpreter = interpreter
        self._recorder = recorder  # the aggregator's: its rows go into its checkpoints
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"checkpoint-{store.client}")
        self._writes: list[Future[Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def take(self, round_: int, model: bytes) -> None:
        """Copy the replicas now (round ``round_``'s model is loaded) and write them off the loop.

        ``model`` is round ``round_``'s averaged model (safetensors, ``partition/name``); only
        the aggregator keeps it, with the rows, once the round is recorded.
        """
        tensors, extra = replicas_snapshot(self._replicas)
        extra["next_round"] = round_ + 1
        if self._results is not None and self._results.run_id is not None:
            extra["run_id"] = self._results.run_id
        extra["latest_batches"] = {str(owner): batch for owner, batch
                                   in sorted(self._interpreter.latest_batches().items())}
        if self._recorder is None:
            self._submit(round_, tensors, extra)
            return
        tensors.update({AVERAGED + key: value for key, value in load_safetensors(model).items()})
        task = asyncio.ensure_future(self._after_record(round_, tensors, extra))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_record(self, round_: int, tensors: dict[str, torch.Tensor],
                            extra: dict[str, Any]) -> None:
        assert self._recorder is not None
        rows = self._recorder.rows
        try:
            for _ in range(2):  # Note: rows of the round
                await self._recorder.drain()
                if len(rows) > round_:
                    break
                await asyncio.sleep(0)
        except Exception as exc:  # the recorder's failure stops the client on its own path
            log.warning("client %d: checkpoint of round %d not written: the round was not "
                        "recorded (%s)", self.store.client, round_, exc)
            return
        if len(rows) <= round_:
            log.warning("client %d: checkpoint of round %d not written: the round was not "
                        "recorded", self.store.client, round_)
            return
        extra["rows"] = [asdict(row) for row in self._recorder.rows[:round_ + 1]]
        extra["torrent_disk_history"] = self._recorder.torrent_disk_history[:round_ + 1]
        self._submit(round_, tensors, extra)

    def _submit(self, round_: int, tensors: dict[str, torch.Tensor],
                extra: dict[str, Any]) -> None:
        write = self._writer.submit(self.store.write, round_, tensors, extra)
        self._writes.append(write)  # before the callback that removes it
        write.add_done_callback(lambda done: self._written(round_, done))

    def _written(self, round_: int, write: Future[Any]) -> None:
        self._writes.remove(write)
        error = None if write.cancelled() else write.exception()
        if error is not None:  # Note: a checkpoint is best effort
            log.warning("client %d: checkpoint of round %d not written to %s: %s",
                        self.store.client, round_, self.store.folder,
                        str(error).splitlines()[0] if str(error) else type(error).__name__)

    async def drain(self) -> None:
        """Wait until every checkpoint taken so far is written (or has failed)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        pending = [asyncio.wrap_future(write) for write in list(self._writes)]
        await asyncio.gather(*pending, return_exceptions=True)

    def close(self) -> None:
        """Finish the writes under way and stop the writer thread."""
        for task in self._tasks:
            task.cancel()
        self._writer.shutdown(wait=True)
