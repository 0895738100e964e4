"""Resuming with real processes: every client SIGKILLed after round 1, restarted, same model."""

import signal
import time

import pytest
from safetensors.torch import load_file

from .test_processes import env_file
from .test_run_folders import start_clients, stop

pytestmark = pytest.mark.integration

ROUNDS = 4


def run_to_end(path, kill_after=None):
    """Run three clients to the end; with ``kill_after``, SIGKILL all once every client has
    that round's checkpoint, then restart them. Return every client's output."""
    checkpoints = path.parent / "checkpoints"
    procs, output, readers = start_clients(path)
    try:
        if kill_after is not None:
            names = [checkpoints / f"client{k}-round{kill_after:06d}.json" for k in (1, 2, 3)]
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
    finals = [load_file(str(tmp_path / name / "results" / "latest" / "models"
                            / f"round{ROUNDS}.safetensors")) for name in ("a", "b")]
    assert finals[0].keys() == finals[1].keys()
    assert all(finals[0][key].equal(finals[1][key]) for key in finals[0])
    rows = [(tmp_path / name / "results" / "latest" / "metrics.csv").read_text().splitlines()
            for name in ("a", "b")]
    assert [row.split(",")[:5] for row in rows[0]] == [row.split(",")[:5] for row in rows[1]]
    assert len(rows[1]) == ROUNDS + 1
