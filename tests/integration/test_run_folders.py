"""Two runs in one RESULTS_DIR: each owns its folder; a killed second run leaves the first as it was."""

import hashlib
import json
import signal
import time

import pytest

from splitnet.bench.placement_fit import beside_steps

from .procs import assert_running, run_local, running, stop
from .test_processes import env_file

pytestmark = pytest.mark.integration

CLIENT_FILES = {"summary.json", "metrics.csv", "timeline.csv", "timeline-client1.csv",
                "timeline-client2.csv", "timeline-client3.csv", "client-1.json",
                "client-2.json", "client-3.json", "models/round1.safetensors"}


def digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_killed_second_run_leaves_the_first_runs_folder_as_it_was(tmp_path):
    results = tmp_path / "results"
    first_env = env_file(tmp_path, TRAINING_NUM_ROUNDS="2", TRAINING_NUM_EPOCHS="1")
    done = run_local("--env-file", first_env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (first,) = (results / "runs").iterdir()
    assert (results / "latest").readlink() == first.relative_to(results)
    before = digest(first)
    assert set(before) >= CLIENT_FILES, sorted(before)  # every client wrote into one folder
    assert json.loads((first / "summary.json").read_text())["rounds"] == 2
    for k in (1, 2, 3):  # Note: process CPU (node/rounds.py), every round
        cpu = json.loads((first / f"client-{k}.json").read_text())["process_cpu_seconds"]
        assert set(cpu) == {"0", "1"} and all(t > 0 for t in cpu.values()), cpu
    assert len(beside_steps(first, 3)) == 3 and beside_steps(first, 4) == ()

    second_env = env_file(tmp_path, TRAINING_NUM_ROUNDS="1000", TRAINING_NUM_EPOCHS="1",
                          PEER_TIMEOUT="3", JOIN_TIMEOUT="60", RESUME="never",
                          FAILURE_POLICY="abort")
    with running(second_env) as clients:
        deadline = time.monotonic() + 120
        while not any("round 2/1000: test accuracy" in line for line in clients[1].lines):
            assert time.monotonic() < deadline, clients[1].text()[-3000:]
            assert_running(clients)
            time.sleep(0.1)
        clients[3].proc.send_signal(signal.SIGKILL)  # killed midway: the others stop with an error
        for k in (1, 2):
            assert clients[k].proc.wait(timeout=60) != 0
        output = stop(clients)

    assert digest(first) == before  # byte for byte
    (second,) = [p for p in (results / "runs").iterdir() if p != first]
    assert (results / "latest").readlink() == second.relative_to(results)
    written = set(digest(second))
    assert {"metrics.csv", "timeline-client1.csv", "timeline-client2.csv", "client-1.json",
            "client-2.json", "models/round2.safetensors"} <= written, sorted(written)
    assert "summary.json" not in written
    for k in (1, 2):
        assert f"run {second.name}, results in" in output[k]
        assert "Traceback" not in output[k]


def test_run_id_of_a_finished_run_is_refused_at_start_naming_its_folder(tmp_path):
    path = env_file(tmp_path, TRAINING_NUM_ROUNDS="1", TRAINING_NUM_EPOCHS="1", RUN_ID="fixed")
    folder = tmp_path / "results" / "runs" / "fixed"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}")
    done = run_local("--env-file", path, timeout=120)
    assert done.returncode != 0
    assert f"'fixed' names a finished run ({folder} holds its summary.json)" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["summary.json"]
