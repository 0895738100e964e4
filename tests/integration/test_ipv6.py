"""Two clients on IPv6 loopback (``LISTEN_HOST=::1``): gRPC, the direct channel, BitTorrent bulk
and metrics all listen on ``::1``, with mutual TLS."""

import json
import time
import urllib.request

import pytest

from splitnet.ops.certs import make_certs
from splitnet.transport.ports import free_ports
from splitnet.transport.swarm import dial_address

from .net import ipv6_loopback
from .procs import spawn, stop

pytestmark = pytest.mark.integration

TWO = ('[["1_1","1_2","2_2","1_3","1_4","1_5","1_6","1_7","2_7","1_8"],'
       '["2_1","2_3","2_4","2_5","2_6","2_8"]]')


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_two_clients_train_on_ipv6_loopback_with_tls_direct_channel_and_bittorrent(tmp_path):
    make_certs(tmp_path / "certs", range(1, 3))
    values = {"NUM_CLIENTS": "2", "CURRENT_MODEL": "CNN", "CURRENT_DATASET": "DIGITS",
              "BATCH_SIZE": "32", "LEARNING_RATE": "0.1", "TRAINING_NUM_ROUNDS": "2",
              "TRAINING_NUM_EPOCHS": "1", "SIMULATION_STAGES_CLIENTS": TWO,
              "RESULTS_DIR": str(tmp_path / "results"),
              "CHECKPOINT_DIR": str(tmp_path / "checkpoints"), "BULK_TRANSPORT": "torrent",
              "ACTIVATION_TRANSPORT": "direct", "METRICS_HOLD": "30"}
    path = tmp_path / "two.env"
    path.write_text("\n".join(f"{k}={v}" for k, v in values.items()) + "\n")
    grpc, metrics = free_ports(2), free_ports(2)
    peers = ",".join(f"[::1]:{p}" for p in grpc)
    started = {k: spawn(path, grpc, k, PEERS=peers, LISTEN_HOST="::1", TLS="on",
                        TLS_DIR=str(tmp_path / "certs"), METRICS_PORT=str(metrics[k - 1]))
               for k in (1, 2)}
    procs = {k: client.proc for k, client in started.items()}
    try:
        seen = ""
        for _ in range(300):  # metrics answer on [::1] while the clients run (METRICS_HOLD)
            try:
                with urllib.request.urlopen(f"http://[::1]:{metrics[1]}/metrics", timeout=2) as r:
                    seen = r.read().decode()
                    break
            except OSError:
                if procs[2].poll() is not None:
                    break
                time.sleep(0.2)
        for k, proc in procs.items():
            assert proc.wait(timeout=240) == 0, started[k].text()
    finally:
        stop(started)
    assert "splitnet" in seen
    summary = json.loads((tmp_path / "results" / "latest" / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.3
    log = started[1].text() + started[2].text()
    assert "Traceback" not in log


def test_the_swarm_dials_a_names_ipv4_address_first():
    assert dial_address(1, "localhost") == "127.0.0.1"
    assert dial_address(1, "::1") == "::1" and dial_address(1, "[::1]") == "::1"
    assert dial_address(1, "127.0.0.1") == "127.0.0.1"
