"""Resuming with real processes: every client SIGKILLed after round 1, restarted, same model."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from splitnet.transport.ports import free_ports

from .procs import every_checkpoint, spawn, start_clients, stop
from .test_processes import env_file

pytestmark = pytest.mark.integration

ROUNDS = 4


REJOIN = {"TRAINING_NUM_ROUNDS": "3", "TRAINING_NUM_EPOCHS": "1", "PEER_TIMEOUT": "3",
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
    procs, output, readers = start_clients(path)
    try:
        if kill_after is not None:
            names = every_checkpoint(path.parent, kill_after)
            deadline = time.monotonic() + 240
            while not all(name.exists() for name in names):
                assert time.monotonic() < deadline, output
                assert all(p.poll() is None for p in procs.values()), output
                time.sleep(0.02)
            for p in procs.values():
                p.send_signal(signal.SIGKILL)
            stop(procs, readers)
            procs, output, readers = start_clients(path)
        for k, p in procs.items():
            assert p.wait(timeout=240) == 0, (k, "".join(output[k])[-3000:])
    finally:
        stop(procs, readers)
    return {k: "".join(lines) for k, lines in output.items()}


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
    clients = {k: spawn(path, ports, k) for k in (1, 2, 3)}
    try:
        checkpoints = every_checkpoint(tmp_path / "b", 0)  # a resume after round 0 is sure
        deadline = time.monotonic() + 240
        while not all(c.exists() for c in checkpoints):  # round 2 of 3 is under way
            assert time.monotonic() < deadline
            assert all(proc.poll() is None for proc, _, _ in clients.values())
            time.sleep(0.02)
        clients[3][0].send_signal(signal.SIGKILL)  # a data owner, mid-round
        clients[3][0].wait()
        clients[3][2].join(timeout=5)
        clients[3][0].stdout.close()
        killed = "".join(clients[3][1])
        clients[3] = spawn(path, ports, 3)  # what a restart policy does
        for k, (proc, lines, _) in clients.items():
            assert proc.wait(timeout=240) == 0, (k, "".join(lines)[-3000:])
    finally:
        for proc, _, reader in clients.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            reader.join(timeout=5)
            proc.stdout.close()
    output = {k: "".join(lines) for k, (_, lines, _) in clients.items()}
    assert "Traceback" not in killed
    assert "restarting from its checkpoint" in output[1] + output[2]
    assert "client 3 resumes after round" in output[3]
    assert "rejoined every peer" in output[1] + output[2]  # recovery time, also a gauge
    assert "Traceback" not in "".join(output.values())
    assert_b_trained_as_a(tmp_path, 3)


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
    local = subprocess.Popen([sys.executable, "-m", "splitnet", "local", "--restart-on-failure",
                              "--env-file", str(path)], text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env={**os.environ, "TORCH_THREADS": "1"})
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(local.stdout), daemon=True)
    reader.start()
    try:
        checkpoints = every_checkpoint(tmp_path / "b", 0)  # a resume after round 0 is sure
        deadline = time.monotonic() + 240
        while not all(c.exists() for c in checkpoints):  # round 2 of 3 is under way
            assert time.monotonic() < deadline and local.poll() is None, "".join(lines)
            time.sleep(0.02)
        pid = client_pid(local.pid, killed)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert local.wait(timeout=300) == 0, "".join(lines)[-4000:]
    finally:
        if local.poll() is None:
            local.kill()
        local.wait()
        reader.join(timeout=5)
        local.stdout.close()
    output = "".join(lines)
    assert f"[local] client {killed} exited with status -9; restarting it (1 of 3)" in output
    assert f"[client {killed}] " in output and "resumes after round" in output
    assert "Traceback" not in output
    assert_b_trained_as_a(tmp_path, 3)
