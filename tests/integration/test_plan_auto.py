"""`splitnet profile` and `splitnet plan --auto` as real processes; what --auto prints validates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import EXAMPLES, ROOT


def _splitnet(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "splitnet", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT, check=False)


def _with(env: Path, tmp_path: Path, name: str, **values: str) -> Path:
    lines = [line for line in env.read_text().splitlines()
             if line.split("=", 1)[0] not in values]
    path = tmp_path / name
    path.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")
    return path


def test_auto_prints_a_placement_that_validate_accepts(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    done = _splitnet("profile", "--env-file", str(EXAMPLES / "cnn_all_local.env"),
                     "--iterations", "3", "--out", str(profile))
    assert done.returncode == 0, done.stderr
    assert "forward_ms" in done.stdout and "CLIENT_SPEED=" in done.stdout
    data = json.loads(profile.read_text())
    assert data["model"] == "CNN" and len(data["forward"]) == 4
    # Two slow clients, fast links: --auto moves work; the seed example's lists as the start.
    env = _with(EXAMPLES / "cnn_cross_offload.env", tmp_path, "slow.env",
                CLIENT_SPEED="[1,1,0.02,0.02,1]", CLIENT_BANDWIDTH="10gbit", CLIENT_RTT="100us")
    done = _splitnet("plan", "--auto", "--env-file", str(env), "--profile", str(profile),
                     "--budget", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    chosen = next(line for line in lines if line.startswith("SIMULATION_STAGES_CLIENTS="))
    predicted = next(line for line in lines if line.startswith("Predicted round time"))
    assert "all-local" in predicted and "current .env" in predicted
    chosen_s = float(predicted.split("chosen ")[1].split(";")[0])
    local_s = float(predicted.split("all-local ")[1].split(" ")[0])
    assert chosen_s <= local_s
    assert "Moved partitions (owner:partition=runner): none." not in lines
    placed = _with(env, tmp_path, "chosen.env", SIMULATION_STAGES_CLIENTS=chosen.split("=", 1)[1],
                   FORWARD_BACKWARD_PAIR_STAGES="[[1,8],[2,7],[3,6],[4,5]]")
    done = _splitnet("validate", "--env-file", str(placed))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Valid plan: 5 clients")


def test_bad_cost_settings_and_profiles_are_refused_with_the_rule(tmp_path: Path) -> None:
    env = _with(EXAMPLES / "cnn_all_local.env", tmp_path, "bad.env", CLIENT_SPEED="[1,1]")
    done = _splitnet("plan", "--auto", "--env-file", str(env))
    assert done.returncode == 2
    assert "CLIENT_SPEED lists 2 values but NUM_CLIENTS=5" in done.stderr
    assert "Traceback" not in done.stderr
    bad = tmp_path / "profile.json"
    bad.write_text('{"model": "CNN"}')
    done = _splitnet("plan", "--auto", "--env-file", str(EXAMPLES / "cnn_all_local.env"),
                     "--profile", str(bad))
    assert done.returncode == 2 and "not a splitnet profile" in done.stderr
    assert "Traceback" not in done.stderr
