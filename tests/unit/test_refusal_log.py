import logging

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
