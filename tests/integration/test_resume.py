"""Resuming with real processes: every client SIGKILLed after round 1, restarted, same model."""

import os
import signal
from pathlib import Path

import pytest
from safetensors.torch import load_file

from splitnet.transport.ports import free_ports

from .procs import every_checkpoint, local, restart, running, spawn, stop, wait_all, wait_for_files
from .test_processes import env_file

pytestmark = pytest.mark.integration

# Note: room to kill (test_drop.py): 10 rounds, so that a kill after round 0's or round 1's
# checkpoints lands with most of the run still to go.
ROUNDS = 10
REJOIN = {"TRAINING_NUM_ROUNDS": str(ROUNDS), "TRAINING_NUM_EPOCHS": "1", "PEER_TIMEOUT": "3",
          "JOIN_TIMEOUT": "60", "REJOIN_TIMEOUT": "120"}


def after_an_uninterrupted_run(tmp_path, values):
    """Run ``values`` to the end in ``tmp_path/a``; return the env file of ``tmp_path/b``."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run_to_end(env_file(tmp_path / "a", **values))
    return env_file(tmp_path / "b", **values)


def assert_b_trained_as_a(tmp_path, rounds):
    """Assert run b ended with run a's final model and metric rows; return b's rows."""
    finals = [load_file(str(tmp_path / name / "results" / "latest" / "models"
                            / f"round{rounds}.safetensors")) for name in ("a", "b")]
    assert finals[0].keys() == finals[1].keys()
    assert all(finals[0][key].equal(finals[1][key]) for key in finals[0])
    rows = [(tmp_path / name / "results" / "latest" / "metrics.csv").read_text().splitlines()
            for name in ("a", "b")]
    assert [row.split(",")[:5] for row in rows[0]] == [row.split(",")[:5] for row in rows[1]]
    return rows[1]


def run_to_end(path, kill_after=None):
    """Run three clients to the end; with ``kill_after``, SIGKILL all once every client has
    that round's checkpoint, then restart them. Return every client's output."""
    ports = free_ports(3)
    with running(path, ports) as clients:
        if kill_after is not None:
            wait_for_files(every_checkpoint(path.parent, kill_after), clients)
            for client in clients.values():
                client.proc.send_signal(signal.SIGKILL)
            stop(clients)  # every one gone before any starts again
            clients.update({k: spawn(path, ports, k) for k in clients})
        wait_all(clients, dict.fromkeys(clients, 0))
        return stop(clients)


def test_every_client_killed_after_round_1_resumes_to_the_uninterrupted_model(tmp_path):
    values = {"TRAINING_NUM_ROUNDS": str(ROUNDS), "TRAINING_NUM_EPOCHS": "1"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run_to_end(env_file(tmp_path / "a", **values))
    output = run_to_end(env_file(tmp_path / "b", **values), kill_after=1)
    assert "client 1 resumes after round" in output[1]
    assert "Traceback" not in "".join(output.values())
    rows = assert_b_trained_as_a(tmp_path, ROUNDS)
    assert len(rows) == ROUNDS + 1


def test_a_killed_data_owner_restarted_by_hand_rejoins_and_ends_with_the_same_model(tmp_path):
    path = after_an_uninterrupted_run(tmp_path, REJOIN)
    ports = free_ports(3)
    with running(path, ports) as clients:
        # a resume after round 0 is sure; round 1 is under way
        wait_for_files(every_checkpoint(tmp_path / "b", 0), clients)
        killed = restart(clients, path, ports, 3)  # a data owner, mid-round; a restart policy
        wait_all(clients, {1: 0, 2: 0, 3: 0})
        output = stop(clients)
    assert "Traceback" not in killed
    assert "restarting from its checkpoint" in output[1] + output[2]
    assert "client 3 resumes after round" in output[3]
    assert "rejoined every peer" in output[1] + output[2]  # recovery time, also a gauge
    assert "Traceback" not in "".join(output.values())
    assert_b_trained_as_a(tmp_path, ROUNDS)


def client_pid(parent, k):
    """Return the pid of ``splitnet local``'s (pid ``parent``) process of client ``k``."""
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"CLIENT_NUMBER={k}".encode() in environ:
            return int(child)
    return None


@pytest.mark.parametrize("killed", [3, 1], ids=["data-owner", "aggregator"])
def test_local_restart_on_failure_brings_a_killed_client_back_to_the_same_model(
        tmp_path, killed):
    path = after_an_uninterrupted_run(tmp_path, REJOIN)
    with local("--restart-on-failure", "--env-file", path,
               env={**os.environ, "TORCH_THREADS": "1"}) as run:
        # a resume after round 0 is sure; round 1 is under way
        wait_for_files(every_checkpoint(tmp_path / "b", 0), {"local": run})
        pid = client_pid(run.proc.pid, killed)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert run.proc.wait(timeout=300) == 0, run.text()[-4000:]
    output = run.text()
    assert f"[local] client {killed} exited with status -9; restarting it (1 of 3)" in output
    assert f"[client {killed}] " in output and "resumes after round" in output
    assert "Traceback" not in output
    assert_b_trained_as_a(tmp_path, ROUNDS)
