"""FAILURE_POLICY=drop with real processes: a lost client leaves, the others finish the run.

Three clients (tests/integration/test_processes.py's THREE): client 3 owns data and runs owner
2's partition 2; client 1 is the aggregator and runs owner 3's partitions 2-3.
"""

import contextlib
import json
import signal
import time

import pytest

from .procs import every_checkpoint, running, stop, wait_all, wait_for_files
from .test_processes import env_file

pytestmark = pytest.mark.integration

# Note: room to kill. A kill test waits for round r's checkpoints, then kills; the aggregator
# writes its checkpoint of round r only once round r is evaluated (off the critical path), so
# with a few short rounds (~0.1 s each) the run could be in its last round, or over, when the
# kill lands. Runs are 10 rounds: the kill lands with most of the run still to go.
ROUNDS = 10
DROP = {"TRAINING_NUM_ROUNDS": str(ROUNDS), "TRAINING_NUM_EPOCHS": "1", "PEER_TIMEOUT": "3",
        "JOIN_TIMEOUT": "60", "REJOIN_TIMEOUT": "120", "FAILURE_POLICY": "drop"}


@contextlib.contextmanager
def three(tmp_path, rounds=ROUNDS, **extra):
    """Start clients 1..3 with DROP; once each has round 0's checkpoint (round 1 is under way),
    yield them by number; however the block ends, none is left running (Note: nothing left
    behind, tests/integration/procs.py)."""
    path = env_file(tmp_path, **{**DROP, "TRAINING_NUM_ROUNDS": str(rounds), **extra})
    with running(path) as clients:
        wait_for_files(every_checkpoint(tmp_path, 0), clients)
        yield clients


def finished(clients, expected):
    """Wait for every client; assert its exit status; return every client's output."""
    wait_all(clients, expected)
    return stop(clients)


def results(tmp_path, rounds=ROUNDS):
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
    with three(tmp_path) as clients:
        clients[3].proc.send_signal(signal.SIGKILL)  # a data owner that also runs owner 2's p2
        output = finished(clients, {1: 0, 2: 0, 3: -9})
    assert "within the drop window" in output[1] and "dropping client(s) 3:" in output[1]
    assert "owner 2's partition 2 → client 2" in output[2]
    summary = results(tmp_path)
    [drop] = summary["dropped"]
    assert drop["dropped"] == [3] and drop["owners_left"] == [3]
    assert drop["moved"] == [{"owner": 2, "partition": 2, "from": 3, "to": 2}]
    assert drop["aggregator"] == 1 and 2 <= drop["from_round"] <= ROUNDS  # rounds without it
    assert "Traceback" not in "".join(output.values())


def test_with_secure_aggregation_a_lost_client_repeats_the_round_without_it(tmp_path):
    """The lost client's masks never cancel: its round is repeated by the survivors, new keys."""
    with three(tmp_path, SECURE_AGGREGATION="on") as clients:
        clients[3].proc.send_signal(signal.SIGKILL)
        output = finished(clients, {1: 0, 2: 0, 3: -9})
    assert "dropping client(s) 3:" in output[1]
    summary = results(tmp_path)
    assert summary["secure_aggregation"] is True
    [drop] = summary["dropped"]
    assert drop["dropped"] == [3] and 2 <= drop["from_round"] <= ROUNDS
    assert "Traceback" not in "".join(output.values())


def test_a_lost_aggregator_hands_over_to_the_lowest_survivor(tmp_path):
    with three(tmp_path) as clients:
        clients[1].proc.send_signal(signal.SIGKILL)
        output = finished(clients, {1: -9, 2: 0, 3: 0})
    assert "aggregator client 2" in output[2]
    summary = results(tmp_path)
    [drop] = summary["dropped"]
    assert drop["dropped"] == [1] and drop["aggregator"] == 2
    assert drop["moved"] == [{"owner": 3, "partition": p, "from": 1, "to": 3} for p in (2, 3)]
    assert "Traceback" not in "".join(output.values())


def test_a_frozen_client_is_dropped_and_refused_when_it_wakes(tmp_path):
    # it must wake while the others still train: 9 rounds of 10 epochs after the drop are
    # seconds, where 7 of 1 epoch took under one on a quiet machine (the survivors had finished)
    with three(tmp_path, TRAINING_NUM_EPOCHS="10") as clients:
        frozen = clients[3].proc
        frozen.send_signal(signal.SIGSTOP)  # killed, stopped or not, if the test fails
        deadline = time.monotonic() + 120
        # it wakes once both survivors dropped it (before, it is still their member: its abort
        # on waking would stop them)
        while not all("dropping client(s) 3:" in clients[k].text() for k in (1, 2)):
            assert time.monotonic() < deadline, clients[2].text()[-3000:]
            time.sleep(0.1)
        frozen.send_signal(signal.SIGCONT)
        output = finished(clients, {1: 0, 2: 0, 3: 1})
    assert "client 3 was dropped from this run" in output[3]
    assert "Traceback" not in "".join(output.values())
    summary = results(tmp_path)
    assert summary["dropped"][0]["dropped"] == [3]
