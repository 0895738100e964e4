"""The Docker engine the container tests share: probed once, the image built once per session."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from ..conftest import ROOT

IMAGE = os.environ.get("SPLITNET_TEST_IMAGE", "splitnet:e2e")


def engine_unreachable() -> str | None:
    """Say why the engine's unix socket does not answer, without the Docker SDK.

    The SDK leaks its socket when the connection fails, and the unclosed socket then fails an
    unrelated later test (warnings are errors), so the engine is probed here first.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None  # a TCP engine: the SDK's own error says what is wrong
    path = host[len("unix://"):]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError as exc:
            return f"{path}: {exc.strerror or exc}"
    return None


@pytest.fixture(scope="session")
def engine():
    docker = pytest.importorskip("docker")
    client = None
    try:
        if (reason := engine_unreachable()) is not None:
            raise OSError(reason)
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no engine here
        if client is not None:
            client.close()
        if os.environ.get("SPLITNET_REQUIRE_DOCKER"):
            pytest.fail(f"SPLITNET_REQUIRE_DOCKER is set but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    if "SPLITNET_TEST_IMAGE" not in os.environ:  # always test this checkout, built offline
        subprocess.run([str(ROOT / "scripts" / "build-image.sh"), IMAGE], check=True, cwd=ROOT)
    client.images.get(IMAGE)
    yield client
    client.close()
