"""A real Prometheus: every dashboard query on a real local run, and a guarded endpoint."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from splitnet.ops.certs import make_certs
from splitnet.telemetry.endpoint import EndpointSecurity
from splitnet.telemetry.metrics import Metrics
from splitnet.transport.ports import free_ports

from ..conftest import ROOT
from .procs import local

pytestmark = pytest.mark.integration
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "splitnet.json"
THREE = ('[["1_1","1_2","3_2","1_3","3_3","1_4","1_5","1_6","3_6","1_7","3_7","1_8"],'
         '["2_1","2_3","2_4","2_5","2_6","2_8"],["3_1","2_2","3_4","3_5","2_7","3_8"]]')


def dashboard_queries():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def test_the_dashboard_is_generated_from_its_script():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_dashboard.py")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and len(dashboard_queries()) >= 12
    assert subprocess.run(["git", "diff", "--quiet", "--", str(DASHBOARD)], cwd=ROOT).returncode == 0


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@contextlib.contextmanager
def running_prometheus(tmp_path, scrape_configs):
    """Run a real Prometheus scraping every second with ``scrape_configs`` (YAML); yield its port."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("SPLITNET_REQUIRE_DOCKER"):
            pytest.fail("CI installs prometheus; it is missing")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n" + scrape_configs)
    (port,) = free_ports(1)
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "prometheus did not start"
                time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def prometheus(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    with running_prometheus(tmp_path, "  - job_name: splitnet\n    file_sd_configs:\n"
                            f"      - files: [{results / 'prometheus-targets.json'}]\n"
                            "        refresh_interval: 1s\n") as port:
        yield port, results


def test_every_dashboard_panel_query_returns_series(prometheus, tmp_path):
    port, results = prometheus
    env_file = tmp_path / "three.env"
    env_file.write_text("\n".join([
        "CURRENT_MODEL=CNN", "CURRENT_DATASET=DIGITS", "BATCH_SIZE=32", "LEARNING_RATE=0.1",
        "TRAINING_NUM_ROUNDS=4", "TRAINING_NUM_EPOCHS=1", f"SIMULATION_STAGES_CLIENTS={THREE}",
        f"RESULTS_DIR={results}", "METRICS_HOLD=25"]) + "\n")
    with local("--env-file", env_file) as run:  # Note: nothing left behind (procs.py)
        deadline = time.monotonic() + 180
        while not (results / "latest" / "summary.json").exists():
            assert run.proc.poll() is None, run.text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        # every panel's data comes with a scrape (every second) while the clients hold their
        # final values (METRICS_HOLD): poll until none is empty, rather than sleep and hope
        deadline = time.monotonic() + 20
        while empty := empty_panels(port):
            assert time.monotonic() < deadline, "panels with no data:\n" + "\n".join(empty)
            time.sleep(0.5)
        up = query(port, "up")["data"]["result"]
        assert len(up) == 3 and all(r["value"][1] == "1" for r in up)
        assert run.proc.wait(timeout=120) == 0, run.text()[-3000:]


def empty_panels(port):
    """Return the dashboard's queries that Prometheus answers with no series, by panel."""
    empty = []
    for title, expr in dashboard_queries():
        answer = query(port, expr)
        assert answer["status"] == "success", (title, expr, answer)
        if not answer["data"]["result"]:
            empty.append(f"{title}: {expr}")
    return empty


def test_prometheus_scrapes_a_tls_endpoint_with_basic_auth_and_nothing_else(tmp_path):
    make_certs(tmp_path / "certs", [1])
    metrics = Metrics(1)
    (port,) = free_ports(1)
    server, thread = metrics.serve(port, "127.0.0.1", EndpointSecurity(
        tmp_path / "certs" / "client1.crt", tmp_path / "certs" / "client1.key",
        "prometheus:s3cret-pass"))
    target = f"      - targets: ['127.0.0.1:{port}']\n"
    tls = f"    scheme: https\n    tls_config:\n      ca_file: {tmp_path / 'certs' / 'ca.crt'}\n" \
          "      server_name: client1\n"
    jobs = {"good": tls + "    basic_auth:\n      username: prometheus\n      password: s3cret-pass\n",
            "wrong": tls + "    basic_auth:\n      username: prometheus\n      password: guess\n",
            "plain": "    basic_auth:\n      username: prometheus\n      password: s3cret-pass\n"}
    config = "".join(f"  - job_name: {job}\n{extra}    static_configs:\n{target}"
                     for job, extra in jobs.items())
    try:
        with running_prometheus(tmp_path, config) as prometheus:
            deadline = time.monotonic() + 60
            while True:
                up = {r["metric"]["job"]: r["value"][1]
                      for r in query(prometheus, "up")["data"]["result"]}
                if len(up) == 3:
                    break
                assert time.monotonic() < deadline, up
                time.sleep(0.5)
            assert up == {"good": "1", "wrong": "0", "plain": "0"}
            scraped = query(prometheus, 'splitnet_peers_up{job="good"}')["data"]["result"]
            assert scraped and scraped[0]["metric"]["client"] == "1"
        with pytest.raises(urllib.error.HTTPError, match="401"):  # a CA-verified request, no auth
            urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", timeout=5,
                                   context=_client_context(tmp_path / "certs" / "ca.crt"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _client_context(ca):
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # the certificate names client1, not 127.0.0.1
    return context
