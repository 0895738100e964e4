"""The swarm stack across a real multi-node Swarm on this machine (``scripts/swarm-lab.sh``): three
dockerd, each in its own network namespace on a host bridge, clients pinned to different nodes by
label, finding each other over the overlay network (VXLAN) by service name, TLS material from
Docker secrets; the run ends with exactly ``splitnet local``'s metrics and weights on the same .env.

Needs root (namespaces, a bridge, iptables) and the main Docker engine (the image is saved from
it). The lab is brought up once for the module and always taken down.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import os
import subprocess
import tarfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import torch
from safetensors.torch import load

from splitnet.ops.certs import make_certs
from splitnet.ops.compose import render_swarm
from splitnet.ops.status import cluster_status

from ..conftest import ROOT
from .conftest import IMAGE
from .test_containers import env_text
from .test_kill import _reference

pytestmark = pytest.mark.container
LAB = ROOT / "scripts" / "swarm-lab.sh"
NODES = 3
ROUNDS = 6
SETTINGS = {"TRAINING_NUM_ROUNDS": str(ROUNDS), "PEER_TIMEOUT": "10", "TORCH_THREADS": "1"}

# Note: the image's health check (5 s timeout, 30 s start period) fails on this shared 2-core
# machine under load (`splitnet health` importing in 5 s), and Swarm then kills healthy clients
# that are still starting: the lab runs give it more time; nothing else is changed.
SLOW_MACHINE = 'version: "3.8"\nservices:\n' + "".join(
    f"  client{k}:\n    healthcheck: {{timeout: 60s, start_period: 300s}}\n"
    for k in range(1, NODES + 1))


def _socket(k):
    return f"unix:///run/splitnet-lab/{k}.sock"


@pytest.fixture(scope="module")
def lab(engine):
    """Bring the lab up (3 nodes, the test image on each); yield the manager's client; always down.

    SPLITNET_LAB_REUSE=1 uses a lab that is already up and leaves it up (development only).
    """
    docker = pytest.importorskip("docker")
    if os.geteuid() != 0:
        pytest.skip("the Swarm lab needs root (network namespaces, a bridge, iptables)")
    if os.environ.get("SPLITNET_LAB_REUSE") == "1":
        subprocess.run([str(LAB), "status", "--nodes", str(NODES)], check=True, timeout=60)
        manager = docker.DockerClient(base_url=_socket(1))
        yield manager
        manager.close()
        return
    try:
        up = subprocess.run([str(LAB), "up", "--nodes", str(NODES), "--image", IMAGE],
                            capture_output=True, text=True, timeout=600)
        print(up.stdout)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        manager = docker.DockerClient(base_url=_socket(1))
        try:
            yield manager
        finally:
            manager.close()
    finally:
        down = subprocess.run([str(LAB), "down"], capture_output=True, text=True, timeout=300)
        print(down.stdout)
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
        assert not [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                text=True).stdout.split() if ns.startswith("snlab-")]


def _node_of_label(manager):
    """client number -> the node id that carries its label."""
    return {k: node.id for node in manager.nodes.list()
            for k in range(1, NODES + 1)
            if node.attrs["Spec"].get("Labels", {}).get(f"splitnet_client_{k}") == "true"}


def _secrets(manager, folder):
    make_certs(folder, list(range(1, NODES + 1)))
    files = {"splitnet_ca": "ca.crt", **{f"splitnet_client{k}_{kind}": f"client{k}.{suffix}"
                                         for k in range(1, NODES + 1)
                                         for kind, suffix in (("cert", "crt"), ("key", "key"))}}
    made = [manager.secrets.create(name="splitnet_token", data=b"lab-e2e-token-0123456789")]
    made += [manager.secrets.create(name=name, data=(folder / file).read_bytes())
             for name, file in files.items()]
    return made


def _wait_complete(manager, stack, timeout=420):
    """Wait until every client's service has a complete task; fail on a failed one."""
    deadline = time.monotonic() + timeout
    while True:
        services = {s.name: s for s in manager.services.list(filters={"name": stack})}
        tasks = {name: s.tasks() for name, s in services.items()}
        states = {name: [t["Status"]["State"] for t in ts] for name, ts in tasks.items()}
        failures = [(name, t["Status"].get("Err", "")) for name, ts in tasks.items() for t in ts
                    if t["Status"]["State"] in ("failed", "rejected")]
        if len(services) == NODES and all("complete" in s for s in states.values()):
            print("task failures before completion (the restart policy's):", failures)
            return tasks
        # the stack's restart policy (on-failure, 3 attempts) is part of the deployment
        worst = max([sum(n == name for n, _ in failures) for name in services] or [0])
        logs = {name: b"".join(s.logs(stdout=True, stderr=True)).decode()[-2000:]
                for name, s in services.items()} if worst > 3 else {}
        assert worst <= 3, (failures, logs)
        assert time.monotonic() < deadline, (states, {n: b"".join(s.logs(
            stdout=True, stderr=True)).decode()[-2000:] for n, s in services.items()})
        time.sleep(2)


def _first_line_time(service, text):
    """The container timestamp of the first log line of ``service`` containing ``text``."""
    for line in b"".join(service.logs(stdout=True, stderr=True, timestamps=True)).decode(
            errors="replace").splitlines():
        stamp, _, rest = line.partition(" ")
        if text in rest:
            whole, _, fraction = stamp.rstrip("Z").partition(".")  # RFC 3339, nanoseconds
            return datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}+00:00").timestamp()
    raise AssertionError(f"{service.name}: no log line with {text!r}")


def _results(volume):
    """Files of the run in client 1's results volume ``volume`` on node 1: path in the run -> bytes
    (read through the engine's archive API, binary-safe; the volume holds one run)."""
    import docker

    node1 = docker.DockerClient(base_url=_socket(1))  # client1, the aggregator, ran there
    try:
        reader = node1.containers.create(IMAGE, ["true"], entrypoint=[], volumes={
            volume: {"bind": "/results", "mode": "ro"}})
        try:
            stream, _ = reader.get_archive("/results/runs")
            archive = b"".join(stream)
        finally:
            reader.remove(force=True)
    finally:
        node1.close()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        assert len({m.name.split("/")[1] for m in members}) == 1, [m.name for m in members]
        return {m.name.split("/", 2)[2]: tar.extractfile(m).read() for m in members}


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def _assert_as_local(files, reference, rounds):
    """The lab run's metrics, accuracy and final weights (bit for bit) are ``splitnet local``'s;
    return the mean round seconds (lab, local)."""
    got = _rows(files["metrics.csv"].decode())
    want = _rows((reference / "metrics.csv").read_text())
    measures = ("test_accuracy", "f1_macro", "test_loss", "train_loss")
    assert [{m: r[m] for m in measures} for r in got] == [{m: r[m] for m in measures}
                                                           for r in want]
    summary = json.loads(files["summary.json"])
    expected = json.loads((reference / "summary.json").read_text())
    assert summary["clients"] == NODES and summary["rounds"] == rounds
    assert summary["test_accuracy"] == expected["test_accuracy"]
    final = f"models/round{rounds}.safetensors"
    weights, reference_weights = load(files[final]), load((reference / final).read_bytes())
    assert weights.keys() == reference_weights.keys()
    assert all(torch.equal(weights[n], reference_weights[n]) for n in reference_weights)
    return (sum(float(r["round_seconds"]) for r in got) / len(got),
            sum(float(r["round_seconds"]) for r in want) / len(want))


@contextlib.contextmanager
def _deployed(lab, tmp_path, settings):
    """Deploy the swarm compose file with ``settings`` on the lab; yield (stack, deploy time,
    the reference run's folder); remove the stack and its secrets afterwards."""
    stack = f"lab{uuid.uuid4().hex[:6]}"
    (tmp_path / "docker-compose-swarm.yml").write_text(render_swarm(NODES))
    (tmp_path / "slow-machine.yml").write_text(SLOW_MACHINE)
    (tmp_path / ".env").write_text(env_text(**settings))
    reference = _reference(tmp_path)
    made = _secrets(lab, tmp_path / "certs")
    env = {**os.environ, "SPLITNET_IMAGE": IMAGE, "DOCKER_HOST": _socket(1)}
    try:
        deployed_at = time.time()
        deploy = subprocess.run(["docker", "stack", "deploy", "--resolve-image", "never", "-c",
                                 "docker-compose-swarm.yml", "-c", "slow-machine.yml", stack], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert deploy.returncode == 0, deploy.stderr
        yield stack, deployed_at, reference
    finally:
        subprocess.run(["docker", "stack", "rm", stack], env=env, capture_output=True,
                       timeout=120)
        deadline = time.monotonic() + 60
        while lab.services.list(filters={"name": stack}) and time.monotonic() < deadline:
            time.sleep(1)
        for secret in made:
            secret.remove()


def test_stack_across_three_nodes_trains_as_local(lab, tmp_path, monkeypatch):
    with _deployed(lab, tmp_path, SETTINGS) as (stack, deployed_at, reference):
        tasks = _wait_complete(lab, stack)
        placed = {int(name[-1]): {t["NodeID"] for t in ts if t["Status"]["State"] == "complete"}
                  for name, ts in tasks.items()}
        labelled = _node_of_label(lab)
        assert placed == {k: {labelled[k]} for k in range(1, NODES + 1)}
        assert len(set(labelled.values())) == NODES  # three different nodes
        monkeypatch.setenv("DOCKER_HOST", _socket(1))
        rows = cluster_status()
        assert {(r["client"], r["node"]) for r in rows if r["state"] == "complete"} == {
            (str(k), f"snlab-{k}") for k in range(1, NODES + 1)}
        client1 = lab.services.get(f"{stack}_client1")
        joined = _first_line_time(client1, f"joined {NODES - 1} peer(s)") - deployed_at
        first_round = _first_line_time(client1, f"round 1/{ROUNDS}") - deployed_at
        lab_round, local_round = _assert_as_local(_results(f"{stack}_results1"),
                                                  reference, ROUNDS)
        print(f"deploy to joined (first batch): {joined:.1f} s; deploy to the first round-1 progress line: "
              f"{first_round:.1f} s; mean round: lab {lab_round:.2f} s, local {local_round:.2f} s"
              f" (ratio {lab_round / local_round:.2f})")


def _kill_node(k):
    """Take node ``k`` away as a power loss would: its link down, every process of its engine
    (dockerd, containerd, shims) and of its containers SIGKILLed."""
    subprocess.run(["ip", "link", "set", f"snlab-h{k}", "down"], check=True)
    pids = subprocess.run(["ip", "netns", "pids", f"snlab-{k}"], capture_output=True,
                          text=True, check=True).stdout.split()
    for procs in glob.glob(f"/sys/fs/cgroup/pids/splitnet-lab-{k}/*/cgroup.procs"):
        pids += Path(procs).read_text().split()
    assert pids
    subprocess.run(["kill", "-KILL", *pids], capture_output=True)


def test_a_lost_node_s_client_is_rescheduled_and_the_run_ends_as_local(lab, tmp_path):
    rounds = 12
    settings = {**SETTINGS, "TRAINING_NUM_ROUNDS": str(rounds), "REJOIN_TIMEOUT": "300"}
    with _deployed(lab, tmp_path, settings) as (stack, _, reference):
        node_of = _node_of_label(lab)
        client1 = lab.services.get(f"{stack}_client1")
        deadline = time.monotonic() + 300
        while f"round 2/{rounds}" not in b"".join(client1.logs(stdout=True)).decode():
            assert time.monotonic() < deadline, "no round 2 in 300 s"
            time.sleep(0.5)
        survivor = lab.nodes.get(node_of[3])  # the operator lets client 2 run on node 3 too
        spec = survivor.attrs["Spec"]
        spec["Labels"]["splitnet_client_2"] = "true"
        survivor.update(spec)
        _kill_node(2)
        killed_at = time.time()
        tasks = _wait_complete(lab, stack, timeout=600)
        done = {int(name[-1]): [t["NodeID"] for t in ts if t["Status"]["State"] == "complete"]
                for name, ts in tasks.items()}
        assert done == {1: [node_of[1]], 2: [node_of[3]], 3: [node_of[3]]}
        rejoined = _first_line_time(client1, "rejoined every peer") - killed_at
        _assert_as_local(_results(f"{stack}_results1"), reference, rounds)
        print(f"node 2 lost: client 2 rescheduled on node 3, every peer rejoined "
              f"{rejoined:.1f} s after the loss")
