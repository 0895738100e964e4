"""A recording ``PeerHandler`` for transport tests (no node behind it)."""

from __future__ import annotations

from typing import Any

from splitnet.errors import ProtocolError
from splitnet.transport.messages import Blob, TaskMessage


class RecordingHandler:
    """Records what arrives; raises ``error`` from every control call when it is set.

    A tensor whose batch is ``refuse_batch`` is refused with a ProtocolError, as a node refuses
    a message that does not fit the plan.
    """

    def __init__(self, joined: Any = None) -> None:
        self.tensors: list[TaskMessage] = []
        self.reports: list[tuple[int, int, str]] = []
        self.models: list[Blob] = []
        self.facts: dict[str, Any] = {}
        self.run_id = ""
        self.error: Exception | None = None
        self.refuse_batch = -1
        self.joined = joined  # called with (client, torrent_port, tensor_port) at join
        self.network: Any = None  # set: complete each tensor first, as the node's routing does

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    async def join(self, client, fingerprint, facts, torrent_port, tensor_port, run_id=""):
        self._check()
        self.facts = facts
        self.run_id = run_id
        if self.joined is not None:
            self.joined(client, torrent_port, tensor_port)
        return "fp", {"clients": 2}, 0, 0, ""

    async def ping(self, client):
        self._check()
        return 3

    async def tensor(self, msg):
        if self.network is not None:
            await self.network.complete(msg)
        if msg.batch == self.refuse_batch:
            raise ProtocolError("task 1_3 runs on client 4, not on client 2")
        self.tensors.append(msg)

    async def round_done(self, client, round_, report_json):
        self._check()
        self.reports.append((client, round_, report_json))

    async def get_states(self, client, round_, weights=None):
        self._check()
        return Blob("states", round_, 2, b"abc", {"sent": 1})

    async def put_model(self, blob):
        self._check()
        self.models.append(blob)

    async def finish(self, client, reason):
        self._check()

    async def abort(self, client, reason):
        self._check()
