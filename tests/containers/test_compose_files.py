import shutil
import subprocess

import pytest

from splitnet.cli import main
from splitnet.ops.compose import render_compose, render_swarm

from ..conftest import ROOT


def test_checked_in_compose_files_equal_the_generator_for_five_clients():
    assert (ROOT / "docker-compose.yml").read_text() == render_compose(5)
    assert (ROOT / "docker-compose-swarm.yml").read_text() == render_swarm(5)


def test_generator_scales_with_the_client_count(tmp_path, capsys):
    assert main(["compose", "--clients", "7", "--output", str(tmp_path / "c.yml")]) == 0
    text = (tmp_path / "c.yml").read_text()
    assert "  client7:" in text and "  client8:" not in text and 'CLIENT_NUMBER: "7"' in text
    swarm = render_swarm(3)
    assert swarm.count("endpoint_mode: dnsrr") == 3
    assert "node.labels.splitnet_client_3 == true" in swarm and "external: true" in swarm
    assert main(["compose", "--clients", "0"]) == 2


def test_every_client_is_restarted_on_failure_and_keeps_its_checkpoints():
    compose = render_compose(4)
    shared, services = compose.split("\nservices:\n", 1)
    assert '  restart: "on-failure' in shared
    clients = services.split("\n\n", 1)[0].split("  client")[1:]
    assert len(clients) == 4
    assert all("<<: *client" in c and "restart" not in c
               and "      - ./checkpoints:/checkpoints" in c for c in clients)
    swarm = render_swarm(4)
    assert swarm.count("        condition: on-failure") == 4
    assert all(f"      - checkpoints{k}:/checkpoints" in swarm for k in range(1, 5))


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
@pytest.mark.parametrize("names", [["docker-compose.yml"], ["docker-compose-swarm.yml"],
                                   ["docker-compose-swarm.yml",
                                    "monitoring/docker-compose-swarm-monitoring.yml"]])
def test_compose_files_are_valid_for_docker_compose(names):
    files = [arg for name in names for arg in ("-f", name)]
    done = subprocess.run(["docker-compose", *files, "config", "-q"], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", "SPLITNET_IMAGE": "x"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_each_client_gets_the_ca_and_its_own_key_only_and_tls_is_on():
    for text, folder in ((render_compose(3), "/certs"), (render_swarm(3), "/run/secrets")):
        services = "\n" + text.split("\nservices:\n", 1)[1].split("\n\n", 1)[0]
        clients = services.split("\n  client")[1:]
        assert len(clients) == 3, services
        for k, client in enumerate(clients, 1):
            assert "TLS: ${TLS:-on}" in client and f"TLS_DIR: {folder}" in client
            assert "ca.crt" in client and f"client{k}.key" in client
            assert [f"client{j}.key" in client for j in (1, 2, 3)].count(True) == 1
