"""End-to-end tests on a real Docker engine: Compose, traffic shaping, Swarm, misconfiguration.

They need a running engine and the image (built offline by scripts/build-image.sh if missing).
Without an engine they are skipped with the reason, unless SPLITNET_REQUIRE_DOCKER=1 (CI sets
it), which turns a missing engine into a failure. Containers are addressed by service name on
networks the tests create; every container, network, volume, secret and swarm is removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from splitnet.compose import render_compose, render_swarm

from .conftest import ROOT

pytestmark = pytest.mark.container
IMAGE = os.environ.get("SPLITNET_TEST_IMAGE", "splitnet:local")
THREE = ('[["1_1","1_2","3_2","1_3","3_3","1_4","1_5","1_6","3_6","1_7","3_7","1_8"],'
         '["2_1","2_3","2_4","2_5","2_6","2_8"],["3_1","2_2","3_4","3_5","2_7","3_8"]]')
MARGIN_ACCURACY = 0.85  # the runtime tests' margin (measured 0.95-0.97 on DIGITS)


@pytest.fixture(scope="module")
def engine():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no engine here
        if os.environ.get("SPLITNET_REQUIRE_DOCKER"):
            pytest.fail(f"SPLITNET_REQUIRE_DOCKER is set but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        subprocess.run([str(ROOT / "scripts" / "build-image.sh"), IMAGE], check=True, cwd=ROOT)
    yield client
    client.close()


def env_text(**extra):
    values = {"NUM_CLIENTS": "3", "CURRENT_MODEL": "CNN", "CURRENT_DATASET": "DIGITS",
              "BATCH_SIZE": "32", "LEARNING_RATE": "0.1", "TRAINING_NUM_ROUNDS": "6",
              "TRAINING_NUM_EPOCHS": "2", "SIMULATION_STAGES_CLIENTS": THREE, "NO_TC": "true",
              "JOIN_TIMEOUT": "120", "PEER_TIMEOUT": "60", **extra}
    return "\n".join(f"{k}={v}" for k, v in values.items()) + "\n"


def compose_project(tmp_path, override_services=""):
    (tmp_path / "docker-compose.yml").write_text(render_compose(3))
    (tmp_path / "override.yml").write_text(
        'version: "3.8"\nnetworks:\n  splitnet:\n    internal: true\n'
        + ("services:\n" + override_services if override_services else ""))
    (tmp_path / ".env").write_text(env_text())
    for folder in ("results", "checkpoints", "data"):
        (tmp_path / folder).mkdir()
    return f"splitnet-e2e-{uuid.uuid4().hex[:8]}"


def compose(tmp_path, project, *args):
    env = {**os.environ, "SPLITNET_IMAGE": IMAGE, "SPLITNET_TOKEN": "e2e-token"}
    return subprocess.run(["docker-compose", "-p", project, "-f", "docker-compose.yml",
                           "-f", "override.yml", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def wait_exited(engine, project, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        containers = engine.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"})
        if containers and all(c.status == "exited" for c in containers):
            return {c.labels["com.docker.compose.service"]: c for c in containers}
        assert time.monotonic() < deadline, [(c.name, c.status) for c in containers]
        time.sleep(1)


def test_compose_trains_three_clients_offline(engine, tmp_path):
    project = compose_project(tmp_path, "  client1:\n    restart: \"no\"\n  client2:\n"
                              "    restart: \"no\"\n  client3:\n    restart: \"no\"\n")
    try:
        up = compose(tmp_path, project, "up", "-d", "--no-build")
        assert up.returncode == 0, up.stderr
        containers = wait_exited(engine, project)
        for name, container in containers.items():
            state = container.attrs["State"]
            assert state["ExitCode"] == 0, (name, container.logs()[-2000:])
        summary = json.loads((tmp_path / "results" / "summary.json").read_text())
        assert summary["test_accuracy"] >= MARGIN_ACCURACY and summary["clients"] == 3
        logs = containers["client1"].logs().decode()
        assert "joined 2 peer(s)" in logs and "round 6/6" in logs
    finally:
        compose(tmp_path, project, "down", "-v", "--remove-orphans")


def test_a_client_with_another_env_is_refused_at_join(engine, tmp_path):
    project = compose_project(tmp_path, "  client1:\n    restart: \"no\"\n  client2:\n"
                              "    restart: \"no\"\n  client3:\n    restart: \"no\"\n"
                              "    environment:\n      SEED: \"7\"\n")
    try:
        assert compose(tmp_path, project, "up", "-d", "--no-build").returncode == 0
        containers = wait_exited(engine, project)
        odd = containers["client3"]
        assert odd.attrs["State"]["ExitCode"] != 0
        assert "plan differs" in odd.logs().decode() and "seed" in odd.logs().decode()
    finally:
        compose(tmp_path, project, "down", "-v", "--remove-orphans")
