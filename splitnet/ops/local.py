"""``splitnet local``: every client as a process on loopback, exactly as the containers run.

Each client's log lines are prefixed ``[client k]``; if one exits with an error the others are
stopped and the run fails; at the end the timelines are merged and the summary returned. Every
client is given the run id (``RUN_ID``: the one set, or a fresh one), so the run's folder
``RESULTS_DIR/runs/<run id>`` is the one this command ran, whatever ``latest`` says later.
Every run gets a throw-away cluster CA and certificates in its folder (``certs``), and its
clients talk mutual TLS, as a deployment does (``--tls off``: no CA, no TLS). With ``wan``
(``--wan``), client k runs in endpoint k of an emulated WAN (:mod:`splitnet.ops.wan`) and its
peers reach it at that endpoint's address.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from splitnet.errors import ConfigError, RuntimeFailure, Violation
from splitnet.ops.certs import make_certs
from splitnet.ops.local_env import LocalPorts, client_env, defaults_env, given_values, metrics_on
from splitnet.ops.wan import Link, Wan, wan_unavailable
from splitnet.plan.plan import Plan
from splitnet.telemetry.progress import is_progress
from splitnet.telemetry.results import merge_timelines
from splitnet.telemetry.runs import LOCAL_CA, check_unfinished, new_run_id, run_folder
from splitnet.transport.ports import free_ports

__all__ = ["RESTARTS", "run_local"]

RESTARTS = 3
"""How many times ``--restart-on-failure`` starts one client again."""


CLEAR = "\r\x1b[K"  # return to column 0 and clear: a progress line is replaced, not kept


def _pump(stream: IO[str], prefix: str, out: IO[str], lock: threading.Lock) -> None:
    """Copy a client's lines with a prefix; on a terminal, progress lines redraw in place."""
    live = out.isatty()
    for line in stream:
        with lock:
            if live and is_progress(line):
                out.write(f"\r\x1b[K{prefix} {line.rstrip()}")
            else:
                out.write(f"{CLEAR if live else ''}{prefix} {line}")
            out.flush()


def run_local(plan: Plan, env_file: Path | None, results_dir: Path,
              extra_env: dict[str, str] | None = None, out: IO[str] = sys.stdout,
              run_id: str | None = None, restarts: int = 0, tls: str = "on",
              wan: dict[int, Link] | None = None) -> tuple[dict[str, Any], Path]:
    """Run every client of ``plan`` as a process; return the run's summary and its folder.

    ``run_id`` names the run (default: a fresh id); a finished run's is refused (ConfigError).
    Unless ``CHECKPOINT_DIR`` is given (the env file, the environment), each run keeps its
    checkpoints in its own folder (``checkpoints`` there), so that runs of other plans never meet
    and the same ``run_id`` finds them again to resume (Note: local environment).
    ``tls="off"`` runs without TLS, and makes no CA.
    A client that exits non-zero is started again, at most ``restarts`` times (what a
    container's restart policy does: ``--restart-on-failure``); past that the run fails.
    ``wan`` (links by client number, e.g. from ``parse_links``) runs the clients in an emulated
    WAN; a machine that cannot emulate one is a ConfigError saying why.
    """
    if wan is not None and (why := wan_unavailable()):
        raise ConfigError(Violation("wan", f"--wan: {why}"), "the command line")
    if wan is None:
        return _run(plan, env_file, results_dir, extra_env, out, run_id, restarts, tls, None)
    with Wan(wan, range(1, plan.num_clients + 1)) as net:
        out.write("".join(f"[local] client {k} at {net.address(k)} in an emulated WAN: "
                          f"{net.links[k]}\n" for k in net.endpoints))
        return _run(plan, env_file, results_dir, extra_env, out, run_id, restarts, tls, net)


def _run(plan: Plan, env_file: Path | None, results_dir: Path, extra_env: dict[str, str] | None,
         out: IO[str], run_id: str | None, restarts: int, tls: str,
         wan: Wan | None) -> tuple[dict[str, Any], Path]:
    run_id = run_id or new_run_id()
    check_unfinished(results_dir, run_id)
    n = plan.num_clients
    ports = LocalPorts(free_ports(4 * n))  # Note: local environment
    env = dict(os.environ)
    given = given_values(env_file, env)

    def host(k: int) -> str:
        return wan.address(k) if wan else "127.0.0.1"

    folder = run_folder(results_dir, run_id)
    env.update({
        "PEERS": ",".join(f"{host(k)}:{ports.grpc(k)}" for k in range(1, n + 1)),
        "SPLITNET_TOKEN": secrets.token_hex(16),
        "TLS": tls,
        "LISTEN_HOST": "0.0.0.0" if wan else "127.0.0.1",
        "RESULTS_DIR": str(results_dir),
        "RUN_ID": run_id,
        "PYTHONUNBUFFERED": "1",
        **defaults_env(given, folder / "checkpoints"),
    })
    if tls == "on":
        certs = folder / LOCAL_CA
        if not (certs / "ca.crt").exists():  # a resumed run keeps its CA
            make_certs(certs, range(1, n + 1))
        env["TLS_DIR"] = str(certs)
    env.update(extra_env or {})
    args = [sys.executable, "-m", "splitnet", "run"]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    # Note: targets file. Prometheus can follow a local run with file_sd_configs on this file.
    results_dir.mkdir(parents=True, exist_ok=True)
    targets = [{"targets": [f"{host(k)}:{ports.of(k)['METRICS_PORT']}" for k in range(1, n + 1)]
                if metrics_on(given) else [], "labels": {"job": "splitnet"}}]
    (results_dir / "prometheus-targets.json").write_text(json.dumps(targets))
    lock = threading.Lock()
    procs: list[subprocess.Popen[str]] = []
    pumps = []

    def start(k: int) -> subprocess.Popen[str]:
        own = client_env(k, ports, given)
        proc = subprocess.Popen([*(wan.prefix(k) if wan else []), *args], env={**env, **own},
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, f"[client {k}]", out, lock),
                                daemon=True)
        pump.start()
        pumps.append(pump)
        return proc

    left = dict.fromkeys(range(1, n + 1), restarts)
    try:
        procs.extend(start(k) for k in range(1, n + 1))
        while failed := _wait(procs):
            k, code = failed
            if left[k] <= 0:
                _stop(procs)
                more = f" after {restarts} restart(s)" if restarts else ""
                raise RuntimeFailure(f"client {k} exited with status {code}{more}; stopped the "
                                     "others")
            left[k] -= 1
            with lock:
                out.write(f"[local] client {k} exited with status {code}; restarting it "
                          f"({restarts - left[k]} of {restarts})\n")
                out.flush()
            procs[k - 1] = start(k)
    except BaseException:
        _stop(procs)
        raise
    finally:
        for pump in pumps:
            pump.join(timeout=5)
    merge_timelines(folder)
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return summary, folder


def _wait(procs: list[subprocess.Popen[str]]) -> tuple[int, int] | None:
    while True:
        codes = [p.poll() for p in procs]
        for k, code in enumerate(codes, 1):
            if code not in (None, 0):
                return k, code
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
