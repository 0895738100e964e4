"""``splitnet bench --lab`` without a lab, or with too few nodes: one line naming --lab, exit 2,
and nothing run; the lab rows' table."""

from __future__ import annotations

import socket

import pytest

from splitnet.bench.lab import lab_table
from splitnet.cli import main
from splitnet.ops import lab


@pytest.fixture
def no_lab(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "RUN_ROOT", tmp_path / "run")
    return tmp_path


def test_bench_lab_without_a_lab_says_how_to_bring_it_up(no_lab, capsys):
    out = no_lab / "bench"
    assert main(["bench", "--lab", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "--lab" in err and "scripts/swarm-lab.sh up" in err and "Traceback" not in err
    assert not out.exists()  # nothing ran


def test_bench_lab_with_fewer_nodes_than_clients_names_both(no_lab, capsys):
    root = no_lab / "run"
    root.mkdir()
    listeners = []
    try:
        for k in (1, 2):  # two engines answering, as the lab's sockets would
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(root / f"{k}.sock"))
            server.listen()
            listeners.append(server)
        (root / "3.sock").touch()  # a stale file is no node
        assert lab.lab_nodes() == [1, 2]
        assert main(["bench", "--lab", "--clients", "3", "--out", str(no_lab / "b")]) == 2
    finally:
        for server in listeners:
            server.close()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "--lab" in err and "[1, 2]" in err and "--clients 2" in err
    assert "--nodes 3" in err


def test_lab_table_puts_the_lab_row_beside_loopback_with_the_ratio():
    loopback = {"samples_per_second": 400.0, "test_accuracy": 0.9}
    row = {"system": "splitnet offload, Swarm lab (3 nodes)", "samples_per_second": 200.0,
           "round_seconds": 3.0, "test_accuracy": 0.95, "deploy_to_done_s": 80.0}
    text = lab_table(loopback, (1.5, 0.95), row)
    assert "| 400.0 | 1.50 | 0.9500 |" in text and "| 200.0 | 3.00 | 0.9500 |" in text
    assert "samples/s 0.50, round time 2.00" in text
