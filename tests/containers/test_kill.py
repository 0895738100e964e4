"""A client container SIGKILLed mid-run is brought back by the compose file's restart policy and
the run ends with exactly the model of an uninterrupted run (``splitnet local``, same .env).

Note: not ``docker kill``. The engine takes ``docker kill`` for a manual stop and turns the
container's restart policy off until it is next started (docker-kill(1)); an operator who killed
it starts it again (``docker-compose up -d``). What a restart policy is for is a client that dies
on its own (a crash, the OOM killer): its main process SIGKILLed, exit status 137. The test does
exactly that, from a throw-away container in the host's PID namespace, so that it works wherever
the engine runs.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from .conftest import IMAGE
from .test_containers import compose, compose_project, wait_exited

pytestmark = pytest.mark.container
# A round takes about 0.3 s; the kill lands after round 0's checkpoints, which the aggregator
# writes once round 0 is evaluated: 20 rounds leave it most of the run to land in (Note: room
# to kill, tests/integration/test_drop.py).
ROUNDS = 20
# Note: TORCH_THREADS. `splitnet local` sets 1 unless told; a container's default (0: torch's
# choice, one thread per core) sums in another order and ends with other weights' last bits.
SETTINGS = {"TRAINING_NUM_ROUNDS": str(ROUNDS), "PEER_TIMEOUT": "3", "TORCH_THREADS": "1"}
VICTIM = "client2"  # a data owner, not the aggregator (SERVER_NUMBER=1)


def _reference(tmp_path):
    """Run the compose run's .env with ``splitnet local``, files in tmp_path; return its folder."""
    env = tmp_path / "reference.env"
    env.write_text((tmp_path / ".env").read_text() + f"RESULTS_DIR={tmp_path / 'reference'}\n"
                   f"DATA_DIR={tmp_path / 'reference-data'}\n")
    done = subprocess.run([sys.executable, "-m", "splitnet", "local", "--env-file", str(env)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (tmp_path / "reference" / "latest").resolve()


def _wait_for_first_checkpoints(engine, project, folder, timeout=300):
    """Wait until every client has its first round's checkpoint; fail if a container ended."""
    manifests = [folder / f"client{k}-round000000.json" for k in (1, 2, 3)]
    deadline = time.monotonic() + timeout
    while not all(m.exists() for m in manifests):
        containers = engine.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"})
        assert all(c.status == "running" for c in containers), [(c.name, c.status)
                                                                for c in containers]
        assert time.monotonic() < deadline, [m.name for m in manifests if m.exists()]
        time.sleep(0.1)


class Crasher:
    """A container in the host's PID namespace that SIGKILLs a container's main process at once
    (started beforehand, so that the kill waits for no container start)."""

    def __init__(self, engine):
        self.helper = engine.containers.run(IMAGE, ["sleep", "600"], entrypoint=[],
                                            pid_mode="host", detach=True)

    def crash(self, container):
        """SIGKILL ``container``'s main process, as a crash or the OOM killer would."""
        container.reload()
        pid = container.attrs["State"]["Pid"]
        code, output = self.helper.exec_run(["sh", "-c", f"kill -KILL {pid}"])
        assert pid > 0 and code == 0, (container.attrs["State"], output)

    def close(self):
        """Remove the helper container."""
        self.helper.remove(force=True)


def _rows(folder):
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_killed_client_container_is_restarted_and_the_run_ends_as_uninterrupted(engine,
                                                                                   tmp_path):
    project = compose_project(tmp_path, **SETTINGS)  # the rendered restart policy, unchanged
    reference = _reference(tmp_path)
    crasher = Crasher(engine)
    try:
        up = compose(tmp_path, project, "up", "-d", "--no-build")
        assert up.returncode == 0, up.stderr
        _wait_for_first_checkpoints(engine, project, tmp_path / "checkpoints")
        victim, = engine.containers.list(filters={
            "label": [f"com.docker.compose.project={project}",
                      f"com.docker.compose.service={VICTIM}"]})
        crasher.crash(victim)
        killed_at = time.strftime("%H:%M:%S")
        containers = wait_exited(engine, project)
        logs = {name: c.logs().decode() for name, c in containers.items()}
        for name, container in containers.items():
            assert container.attrs["State"]["ExitCode"] == 0, (name, logs[name][-3000:])
        assert containers[VICTIM].attrs["RestartCount"] >= 1, logs[VICTIM][-3000:]
        assert f"{VICTIM[-1]} resumes after round" in logs[VICTIM], logs[VICTIM][-3000:]
        assert "restarting from its checkpoint" in logs["client1"], logs["client1"][-3000:]
        assert "rejoined every peer" in logs["client1"], logs["client1"][-3000:]
        print(f"recovery: {VICTIM} killed at {killed_at}", *[
            line for line in logs["client1"].splitlines() + logs[VICTIM].splitlines()
            if any(x in line for x in ("restarting from", "rejoined every", "resumes after"))],
            sep="\n")
        run = (tmp_path / "results" / "latest").resolve()
        summary = json.loads((run / "summary.json").read_text())
        assert summary["rounds"] == ROUNDS
        assert [r["round"] for r in _rows(run)] == [str(r) for r in range(1, ROUNDS + 1)]
        measures = ("test_accuracy", "f1_macro", "test_loss", "train_loss")
        assert ([{m: r[m] for m in measures} for r in _rows(run)]
                == [{m: r[m] for m in measures} for r in _rows(reference)])
        expected = json.loads((reference / "summary.json").read_text())
        assert summary["test_accuracy"] == expected["test_accuracy"]
        final = f"models/round{ROUNDS}.safetensors"
        got, want = load_file(str(run / final)), load_file(str(reference / final))
        assert got.keys() == want.keys()
        assert all(torch.equal(got[name], want[name]) for name in want)
    finally:
        crasher.close()
        compose(tmp_path, project, "down", "-v", "--remove-orphans")
