import io

import pytest
from prometheus_client import generate_latest

from splitnet.errors import ConfigError
from splitnet.ops.local import CLEAR, _pump
from splitnet.telemetry.metrics import ERROR_KINDS, Metrics
from splitnet.telemetry.report import write_report


def test_metrics_expose_every_family_with_bounded_labels():
    # What /metrics serves (serving itself is covered by tests/integration/test_prometheus.py).
    metrics = Metrics(3)
    metrics.transfer(2, "grpc", "activation", 4096, 0.002, sent=True)
    metrics.error("rejected")
    text = generate_latest(metrics.registry).decode()
    for kind in ERROR_KINDS:
        assert f'splitnet_errors_total{{client="3",kind="{kind}"}}' in text
    assert 'splitnet_sent_bytes_total{client="3",kind="activation",peer="2",transport="grpc"} 4096.0' in text
    assert "process_resident_memory_bytes" in text and "splitnet_torrent_peers" in text
    assert "batch=" not in text and "time=" not in text


def test_report_without_results_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="run `splitnet local`"):
        write_report(tmp_path)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_lines_redraw_in_place_on_a_terminal_and_stay_plain_in_logs():
    lines = ["x INFO PROGRESS owner 1: round 1/2\n", "x INFO round 1/2: test accuracy 0.5\n"]
    terminal, log = _Terminal(), io.StringIO()
    import threading

    _pump(io.StringIO("".join(lines)), "[client 1]", terminal, threading.Lock())
    _pump(io.StringIO("".join(lines)), "[client 1]", log, threading.Lock())
    assert terminal.getvalue() == (f"{CLEAR}[client 1] x INFO PROGRESS owner 1: round 1/2"
                                   f"{CLEAR}[client 1] x INFO round 1/2: test accuracy 0.5\n")
    assert log.getvalue() == "".join(f"[client 1] {line}" for line in lines)
