"""A client's own dataset, read once, when first needed."""

from __future__ import annotations

import asyncio

from splitnet.config.settings import DataSettings, TrainingSettings
from splitnet.learning.data import Dataset, load_dataset

__all__ = ["LocalData"]


class LocalData:
    """The client's dataset, read once when first needed: after joining, off the event loop.

    Note: data after join. Reading a dataset can fail (a missing file) or take seconds; done
    after the client has joined, a failure reaches the peers as an Abort naming it, and
    heartbeats go on while it reads.
    """

    def __init__(self, training: TrainingSettings, data: DataSettings) -> None:
        self._training = training
        self._data = data
        self._dataset: Dataset | None = None

    async def load(self) -> Dataset:
        """Read the dataset (once) and return it."""
        if self._dataset is None:
            self._dataset = await asyncio.get_running_loop().run_in_executor(
                None, load_dataset, self._training, self._data)
        return self._dataset

    @property
    def dataset(self) -> Dataset:
        """Return the dataset :meth:`load` read."""
        assert self._dataset is not None, "LocalData.load() first (Note: data after join)"
        return self._dataset
