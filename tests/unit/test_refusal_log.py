import asyncio
import logging

import grpc

from splitnet.errors import ProtocolError
from splitnet.transport import server
from splitnet.transport.status import RefusalLog


def test_one_line_per_peer_per_interval_and_the_next_line_counts_the_ones_left_out(caplog):
    now = [0.0]
    refusals = RefusalLog(logging.getLogger("test.refusals"), 1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.refusals"):
        for _ in range(1000):
            refusals.warning("1", "client 2 refused task 1_3 batch 0 from client 1")
        refusals.warning("3", "client 2 refused task 3_1 batch 0 from client 3")
        now[0] = 1.0
        refusals.warning("1", "client 2 refused task 1_3 batch 9 from client 1")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["client 2 refused task 1_3 batch 0 from client 1",
                     "client 2 refused task 3_1 batch 0 from client 3",
                     "client 2 refused task 1_3 batch 9 from client 1 "
                     "(999 more like it from 1 not logged)"]


def test_many_peers_share_one_key_once_the_table_is_full(caplog):
    refusals = RefusalLog(logging.getLogger("test.refusals"), 1.0, clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, "test.refusals"):
        for peer in range(10 * RefusalLog.MAX_KEYS):
            refusals.warning(str(peer), f"refused client {peer}")
    assert len(caplog.records) == RefusalLog.MAX_KEYS + 1


class _Context:
    """What ``_guard`` uses of a servicer context: the peer and abort."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.codes: list[object] = []

    def peer(self) -> str:
        return f"ipv4:127.0.0.1:{self.port}"

    async def abort(self, code: object, details: str) -> None:
        self.codes.append(code)


def test_refused_grpc_calls_are_logged_once_per_peer_and_kind_per_interval(caplog, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(server, "REFUSALS", RefusalLog(server.log, 1.0, clock=lambda: now[0]))

    async def refuse() -> None:
        raise ProtocolError("the bytes are no model")

    async def flood() -> list[object]:
        codes = []
        for port in range(1000, 1500):  # a new connection per call is still the same peer
            context = _Context(port)
            await server._guard(context, refuse())
            codes += context.codes
        now[0] = 1.0
        await server._guard(_Context(2000), refuse())
        return codes

    with caplog.at_level(logging.WARNING, "splitnet.transport"):
        codes = asyncio.run(flood())
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 500  # every call is still refused
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "499 more like it" in lines[1], lines
