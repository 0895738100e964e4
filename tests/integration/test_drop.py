"""FAILURE_POLICY=drop with real processes: a lost client leaves, the others finish the run.

Three clients (tests/integration/test_processes.py's THREE): client 3 owns data and runs owner
2's partition 2; client 1 is the aggregator and runs owner 3's partitions 2-3.
"""

import json
import signal
import time

import pytest

from splitnet.transport.ports import free_ports

from .procs import every_checkpoint, spawn
from .test_processes import env_file

pytestmark = pytest.mark.integration

DROP = {"TRAINING_NUM_ROUNDS": "3", "TRAINING_NUM_EPOCHS": "1", "PEER_TIMEOUT": "3",
        "JOIN_TIMEOUT": "60", "REJOIN_TIMEOUT": "120", "FAILURE_POLICY": "drop"}


def start_three(tmp_path, rounds=3, **extra):
    """Start clients 1..3 with DROP; wait until each has round 0's checkpoint."""
    path = env_file(tmp_path, **{**DROP, "TRAINING_NUM_ROUNDS": str(rounds), **extra})
    ports = free_ports(3)
    clients = {k: spawn(path, ports, k) for k in (1, 2, 3)}
    checkpoints = every_checkpoint(tmp_path, 0)
    deadline = time.monotonic() + 240
    while not all(c.exists() for c in checkpoints):  # round 1 of 3 is under way
        assert time.monotonic() < deadline
        assert all(proc.poll() is None for proc, _, _ in clients.values())
        time.sleep(0.02)
    return clients


def wait_all(clients, expected):
    """Wait for every client; assert its exit status; return every client's output."""
    try:
        for k, (proc, lines, _) in clients.items():
            assert proc.wait(timeout=240) == expected[k], (k, "".join(lines)[-3000:])
    finally:
        for proc, _, reader in clients.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            reader.join(timeout=5)
            proc.stdout.close()
    return {k: "".join(lines) for k, (_, lines, _) in clients.items()}


def results(tmp_path, rounds=3):
    """Return the run's summary; assert metrics.csv has every round once
    and training went on after the drop (chance is 0.1)."""
    latest = tmp_path / "results" / "latest"
    summary = json.loads((latest / "summary.json").read_text())
    rows = [row.split(",") for row in (latest / "metrics.csv").read_text().splitlines()[1:]]
    assert [row[0] for row in rows] == [str(r) for r in range(1, rounds + 1)]
    accuracy = [float(row[1]) for row in rows]
    assert accuracy[-1] == summary["test_accuracy"] > max(accuracy[0], 0.2)
    return summary


def test_a_data_owner_killed_for_good_is_dropped_and_its_partitions_go_home(tmp_path):
    clients = start_three(tmp_path)
    clients[3][0].send_signal(signal.SIGKILL)  # a data owner that also runs owner 2's p2
    output = wait_all(clients, {1: 0, 2: 0, 3: -9})
    assert "within the drop window" in output[1] and "dropping client(s) 3:" in output[1]
    assert "owner 2's partition 2 → client 2" in output[2]
    summary = results(tmp_path)
    [drop] = summary["dropped"]
    assert drop["dropped"] == [3] and drop["owners_left"] == [3]
    assert drop["moved"] == [{"owner": 2, "partition": 2, "from": 3, "to": 2}]
    assert drop["aggregator"] == 1 and drop["from_round"] in (2, 3)
    assert "Traceback" not in "".join(output.values())


def test_with_secure_aggregation_a_lost_client_repeats_the_round_without_it(tmp_path):
    """The lost client's masks never cancel: its round is repeated by the survivors, new keys."""
    clients = start_three(tmp_path, SECURE_AGGREGATION="on")
    clients[3][0].send_signal(signal.SIGKILL)
    output = wait_all(clients, {1: 0, 2: 0, 3: -9})
    assert "dropping client(s) 3:" in output[1]
    summary = results(tmp_path)
    assert summary["secure_aggregation"] is True
    [drop] = summary["dropped"]
    assert drop["dropped"] == [3] and drop["from_round"] in (2, 3)
    assert "Traceback" not in "".join(output.values())


def test_a_lost_aggregator_hands_over_to_the_lowest_survivor(tmp_path):
    clients = start_three(tmp_path)
    clients[1][0].send_signal(signal.SIGKILL)
    output = wait_all(clients, {1: -9, 2: 0, 3: 0})
    assert "aggregator client 2" in output[2]
    summary = results(tmp_path)
    [drop] = summary["dropped"]
    assert drop["dropped"] == [1] and drop["aggregator"] == 2
    assert drop["moved"] == [{"owner": 3, "partition": p, "from": 1, "to": 3} for p in (2, 3)]
    assert "Traceback" not in "".join(output.values())


def test_a_frozen_client_is_dropped_and_refused_when_it_wakes(tmp_path):
    # it must wake while the others still train: 7 rounds of 10 epochs after the drop are
    # seconds, where 7 of 1 epoch took under one on a quiet machine (the survivors had finished)
    clients = start_three(tmp_path, rounds=8, TRAINING_NUM_EPOCHS="10")
    frozen = clients[3][0]
    frozen.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 120
    # it wakes once both survivors dropped it (before, it is still their member: its abort
    # on waking would stop them)
    while not all("dropping client(s) 3:" in "".join(clients[k][1]) for k in (1, 2)):
        assert time.monotonic() < deadline, "".join(clients[2][1])
        time.sleep(0.1)
    frozen.send_signal(signal.SIGCONT)
    output = wait_all(clients, {1: 0, 2: 0, 3: 1})
    assert "client 3 was dropped from this run" in output[3]
    assert "Traceback" not in "".join(output.values())
    summary = results(tmp_path, rounds=8)
    assert summary["dropped"][0]["dropped"] == [3]
