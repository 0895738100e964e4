"""The multi-node Swarm lab (``scripts/swarm-lab.sh``): its nodes, the swarm stack on it.

Find the nodes, deploy the stack, wait for the run, read the run's files back. Shared by
``splitnet bench --lab`` and the lab tests (``tests/containers/test_lab.py``).

Node K's engine answers on ``/run/splitnet-lab/K.sock``; node 1 is the Swarm manager. The stack is
``docker-compose-swarm.yml`` (client K placed on the node labelled ``splitnet_client_K``) with the
token and TLS material as Docker secrets.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from splitnet.errors import RuntimeFailure
from splitnet.ops.certs import make_certs
from splitnet.ops.compose import render_swarm, tls_secrets

__all__ = ["LAB_UP", "create_secrets", "deployed", "lab_nodes", "node_socket", "read_results",
           "lab_problem", "slow_machine", "wait_complete"]

RUN_ROOT = Path("/run/splitnet-lab")
LAB_UP = "scripts/swarm-lab.sh up"
"""The command that brings the lab up (from the repository root)."""


def node_socket(k: int) -> str:
    """Return node ``k``'s engine address (``unix:///run/splitnet-lab/K.sock``)."""
    return f"unix://{RUN_ROOT}/{k}.sock"


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def lab_nodes(root: Path | None = None) -> list[int]:
    """Return the numbers of the lab's nodes whose engine socket answers, in order."""
    root = RUN_ROOT if root is None else root
    return [k for k in range(1, 10) if (root / f"{k}.sock").exists()
            and _answers(root / f"{k}.sock")]


def lab_problem(clients: int, root: Path | None = None) -> str | None:
    """Return why ``clients`` clients cannot run on the lab (one line naming --lab), or None."""
    root = RUN_ROOT if root is None else root
    nodes = lab_nodes(root)
    if not nodes:
        return (f"--lab: no Swarm lab is up (no engine answers under {root}); bring one up "
                f"first with `{LAB_UP}` (and `scripts/swarm-lab.sh down` after)")
    if nodes != list(range(1, clients + 1)):
        return (f"--lab: the lab has node(s) {nodes} but the run needs clients 1..{clients}, "
                f"one a node; use --clients {len(nodes)} or `{LAB_UP} --nodes {clients}`")
    return None


def slow_machine(clients: int) -> str:
    """Return the compose override that gives the health check 60 s and a 300 s start period.

    Note: the image's check (5 s timeout, 30 s start period) fails on a busy 2-core machine
    (`splitnet health` importing in 5 s), and Swarm then kills healthy clients still starting.
    """
    return 'version: "3.8"\nservices:\n' + "".join(
        f"  client{k}:\n    healthcheck: {{timeout: 60s, start_period: 300s}}\n"
        for k in range(1, clients + 1))


def create_secrets(manager: Any, folder: Path, clients: int, token: bytes) -> list[Any]:
    """Create the stack's secrets on ``manager``; return them.

    The token, the CA and each client's certificate and key (made under ``folder``).
    """
    make_certs(folder, list(range(1, clients + 1)))
    files = dict(secret for k in range(1, clients + 1) for secret in tls_secrets(k))
    made = [manager.secrets.create(name="splitnet_token", data=token)]
    made += [manager.secrets.create(name=name, data=(folder / file).read_bytes())
             for name, file in files.items()]
    return made


@contextlib.contextmanager
def deployed(manager: Any, folder: Path, env_text: str, clients: int, image: str,
             token: bytes = b"lab-e2e-token-0123456789") -> Iterator[tuple[str, float]]:
    """Deploy the swarm stack with the settings ``env_text`` from ``folder``.

    Yield (stack name, deploy time); remove the stack and its secrets afterwards (waiting 60 s
    at most for the services to go).
    """
    stack = f"lab{uuid.uuid4().hex[:6]}"
    (folder / "docker-compose-swarm.yml").write_text(render_swarm(clients))
    (folder / "slow-machine.yml").write_text(slow_machine(clients))
    (folder / ".env").write_text(env_text)
    made = create_secrets(manager, folder / "certs", clients, token)
    env = {**os.environ, "SPLITNET_IMAGE": image, "DOCKER_HOST": node_socket(1)}
    try:
        deployed_at = time.time()
        deploy = subprocess.run(["docker", "stack", "deploy", "--resolve-image", "never", "-c",
                                 "docker-compose-swarm.yml", "-c", "slow-machine.yml", stack],
                                cwd=folder, env=env, capture_output=True, text=True, timeout=120)
        if deploy.returncode != 0:
            raise RuntimeFailure(f"docker stack deploy {stack}: {deploy.stderr.strip()}")
        yield stack, deployed_at
    finally:
        subprocess.run(["docker", "stack", "rm", stack], env=env, capture_output=True,
                       timeout=120)
        deadline = time.monotonic() + 60
        while manager.services.list(filters={"name": stack}) and time.monotonic() < deadline:
            time.sleep(1)
        for secret in made:
            secret.remove()


def _logs(services: Mapping[str, Any]) -> dict[str, str]:
    return {name: b"".join(s.logs(stdout=True, stderr=True)).decode(errors="replace")[-2000:]
            for name, s in services.items()}


def wait_complete(manager: Any, stack: str, clients: int, timeout: float = 420,
                  attempts: int = 3) -> dict[str, list[dict[str, Any]]]:
    """Wait until every client's service of ``stack`` has a complete task; return the tasks.

    Raise RuntimeFailure (with the services' logs) when a service failed more than ``attempts``
    times (the stack's restart policy) or after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        services = {s.name: s for s in manager.services.list(filters={"name": stack})}
        tasks = {name: s.tasks() for name, s in services.items()}
        states = {name: [t["Status"]["State"] for t in ts] for name, ts in tasks.items()}
        failures = [(name, t["Status"].get("Err", "")) for name, ts in tasks.items() for t in ts
                    if t["Status"]["State"] in ("failed", "rejected")]
        if len(services) == clients and all("complete" in s for s in states.values()):
            return tasks
        worst = max([sum(n == name for n, _ in failures) for name in services] or [0])
        if worst > attempts:
            raise RuntimeFailure(f"stack {stack}: a client failed {worst} times: {failures}; "
                               f"logs: {_logs(services)}")
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"stack {stack}: not complete in {timeout:.0f} s: {states}; "
                               f"logs: {_logs(services)}")
        time.sleep(2)


def read_results(k: int, volume: str, image: str, folder: str = "runs") -> dict[str, bytes]:
    """Return the run's files in results volume ``volume`` on node ``k``.

    Path below ``<folder>/<run id>/`` -> bytes, through the engine's archive API (binary-safe);
    the volume must hold one run.
    """
    import docker

    node = docker.DockerClient(base_url=node_socket(k))
    try:
        reader = node.containers.create(image, ["true"], entrypoint=[], volumes={
            volume: {"bind": "/results", "mode": "ro"}})
        try:
            stream, _ = reader.get_archive(f"/results/{folder}")
            archive = b"".join(stream)
        finally:
            reader.remove(force=True)
    finally:
        node.close()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        runs = {m.name.split("/")[1] for m in members}
        if len(runs) != 1:
            raise RuntimeFailure(f"volume {volume} on node {k}: expected one run, found {runs}")
        out = {}
        for m in members:
            data = tar.extractfile(m)
            if data is not None:
                out[m.name.split("/", 2)[2]] = data.read()
        return out
