"""The bench's Flower row: Flower's FedAvg on splitnet's all-local case, in ``.venv-flower``.

Flower (``flwr``) is the federated-learning framework users compare with. This runs it on the
same model, shards, seed, rounds, epochs, batch size and learning rate as ``splitnet bench``'s
all-local row (the Flower apps are :mod:`splitnet.bench.flower_app`; what they train is
:mod:`splitnet.bench.flower_train`), with Flower's deployment runtime: one SuperLink and one
SuperNode per owner, each its own process, then ``flwr run``. They talk over Flower's HTTP APIs
in **insecure mode** (no TLS; splitnet's all-local row uses mutual TLS, so the row favours
Flower on that count).

The row is ``{"seconds", "samples_per_s", "test_acc", "note", ...}``: ``seconds`` is the
ServerApp's ``strategy.start`` (every round, aggregation included; process start-up and the
final evaluation left out, as splitnet's round seconds leave them out), ``samples_per_s`` the
samples trained over those seconds, ``test_acc`` splitnet's own ``evaluate`` of Flower's final
global model on the same test split. Flower's SuperNode polls the SuperLink every 3 s when it
has no message, and starts a ``flwr-clientapp`` process per message: both are Flower's costs
and are in the figure.

Under the emulated WAN (``wan``), the SuperLink runs in endpoint 0's namespace and SuperNode k
in endpoint k's. Without ``.venv-flower`` (``scripts/flower-venv.sh`` makes it) the row is
"not run", never an error.

Standalone: ``python -m splitnet.bench.flower [--rounds 2] [--clients 3] [--epochs 1]
[--out DIR]`` prints the row as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from safetensors.torch import load_file

from splitnet.bench.flower_train import FlowerJob, all_local_lines
from splitnet.bench.options import BenchOptions, bench_options
from splitnet.errors import RuntimeFailure
from splitnet.learning.evaluation import evaluate
from splitnet.ops.wan import Wan
from splitnet.transport.ports import free_ports

__all__ = ["ROOT", "VENV", "flower_unavailable", "run_flower"]

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-flower"
_TOOLS = ("flower-superlink", "flower-supernode", "flwr")
_APP = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "splitnet-bench-flower"
version = "1.0.0"
description = "splitnet bench: Flower's FedAvg on splitnet's all-local case"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "splitnet"

[tool.flwr.app.components]
serverapp = "splitnet.bench.flower_app:server"
clientapp = "splitnet.bench.flower_app:client"

[tool.flwr.app.config]
env-file = {env}
out = {out}
"""
_CONNECTION = """[superlink]
default = "bench"

[superlink.bench]
address = "{address}"
insecure = true
"""


def flower_unavailable(venv: Path | None = None) -> str | None:
    """Return why the Flower row cannot run here (``venv``: ``.venv-flower``), or None."""
    venv = venv or VENV
    missing = [tool for tool in _TOOLS if not (venv / "bin" / tool).exists()]
    if missing:
        return (f"{venv} has no {', '.join(missing)} (make it with scripts/flower-venv.sh)")
    return None


def _not_run(why: str) -> dict[str, Any]:
    return {"seconds": None, "samples_per_s": None, "test_acc": None, "note": f"not run: {why}"}


def _write_app(opts: BenchOptions, folder: Path, address: str) -> dict[str, str]:
    """Write the settings file, the Flower app and FLWR_HOME; return the processes' env."""
    env_file, out, app, home = (folder / "flower.env", folder / "out", folder / "app",
                                folder / "flwr-home")
    for path in (out, app, home):
        path.mkdir(parents=True, exist_ok=True)
    env_file.write_text("\n".join(all_local_lines(opts)) + "\n")
    (app / "pyproject.toml").write_text(_APP.format(env=json.dumps(str(env_file)),
                                                    out=json.dumps(str(out))))
    (home / "config.toml").write_text(_CONNECTION.format(address=address))
    (out / "flower.json").unlink(missing_ok=True)
    search = f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "FLWR_HOME": str(home), "PYTHONPATH": str(ROOT), "PATH": search,
            "TORCH_THREADS": "1"}


class _Processes:
    """Long-running processes, each in its own session, all killed (group and all) on close."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []
        self.names: dict[int, Path] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        self.logs.append(log)
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                cwd=self.folder, start_new_session=True)
        self.procs.append(proc)
        self.names[proc.pid] = self.folder / f"{name}.log"
        return proc

    def ready(self, proc: subprocess.Popen[bytes], line: str, timeout: float = 120) -> None:
        """Wait until ``proc``'s log shows ``line``; raise RuntimeFailure if it exits first."""
        log = self.names[proc.pid]
        deadline = time.time() + timeout
        while line not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeFailure(f"bench: Flower's {log.stem} did not start (exit "
                                     f"{proc.returncode}); log {log}:\n"
                                     f"{log.read_text(errors='replace')[-1500:]}")
            time.sleep(0.2)

    def close(self) -> None:
        """Stop every process the row started, its own groups and any that left them.

        flwr's SuperLink starts its SuperExec in a new session (out of ``killpg``'s reach) and
        waits only 1 s for it on SIGTERM; every process inherits the row's folder as working
        directory, so those left are found by it and stopped by pid.
        """
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in self.procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            for pid in _working_in(self.folder):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.time() + 5
            while time.time() < deadline and (any(p.poll() is None for p in self.procs)
                                              or _working_in(self.folder)):
                time.sleep(0.1)
        for log in self.logs:
            log.close()


def _working_in(folder: Path) -> list[int]:
    """Return the live processes (not zombies) whose working directory is ``folder``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (Path(os.readlink(entry / "cwd")) == folder
                    and ") Z" not in (entry / "stat").read_text()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def run_flower(opts: BenchOptions, folder: Path, wan: Wan | None = None,
               timeout: float | None = None) -> dict[str, Any]:
    """Run the Flower row for ``opts`` in ``folder``; return it (a "not run" note if it can't).

    Owner k's SuperNode runs in endpoint k's namespace and the SuperLink in endpoint 0's when
    ``wan`` is given. ``timeout`` (default 300 s + 120 s a round) bounds ``flwr run``; a run
    that fails or times out raises RuntimeFailure with the end of its log.
    """
    why = flower_unavailable()
    if why:
        return _not_run(why)
    folder = folder.resolve()
    host = wan.address(0) if wan is not None else "127.0.0.1"
    port, *node_ports = free_ports(opts.clients + 1)
    env = _write_app(opts, folder, f"{host}:{port}")
    bin_ = VENV / "bin"

    def inside(k: int, command: list[str]) -> list[str]:
        return [*wan.prefix(k), *command] if wan is not None else command

    procs = _Processes(folder, env)
    start = time.time()
    try:
        link = procs.start("superlink", inside(0, [
            str(bin_ / "flower-superlink"), "--insecure", "--host", host, "--port", str(port),
            "--disable-runtime-dependency-installation"]))
        procs.ready(link, "Uvicorn running on")
        nodes = [procs.start(f"supernode-{k}", inside(k, [
            str(bin_ / "flower-supernode"), "--insecure", "--superlink", f"{host}:{port}",
            "--host", "127.0.0.1", "--port", str(node_port), "--node-config", f"owner={k}"]))
            for k, node_port in enumerate(node_ports, 1)]
        for node in nodes:  # registered: strategy.start need not wait for them
            procs.ready(node, "SuperNode ID")
        log = folder / "flwr-run.log"
        with log.open("wb") as out:
            done = subprocess.run(
                inside(0, [str(bin_ / "flwr"), "run", str(folder / "app"), "bench", "--stream"]),
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder, check=False,
                timeout=timeout or 300 + 120 * opts.rounds)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"bench: Flower did not finish in {exc.timeout:.0f} s; logs in "
                             f"{folder}") from exc
    finally:
        procs.close()
    facts = folder / "out" / "flower.json"
    if done.returncode != 0 or not facts.exists():
        raise RuntimeFailure(f"bench: Flower failed (exit {done.returncode}); log {log}:\n"
                             f"{log.read_text(errors='replace')[-1500:]}")
    return _row(folder, json.loads(facts.read_text()), time.time() - start, wan)


def _row(folder: Path, facts: dict[str, Any], wall: float,
         wan: Wan | None) -> dict[str, Any]:
    job = FlowerJob.load(folder / "flower.env")
    model = job.model()
    model.load_state_dict(load_file(str(folder / "out" / "model.safetensors")))
    test = evaluate(model, job.dataset.test_x, job.dataset.test_y)
    seconds = float(facts["train_seconds"])
    return {"system": "Flower FedAvg (flwr, insecure)", "seconds": seconds,
            "samples_per_s": facts["samples"] / max(seconds, 1e-9),
            "test_acc": test["accuracy"], "test_f1": test["f1_macro"],
            "samples": facts["samples"], "rounds": facts["rounds"],
            "seconds_per_round": seconds / max(int(facts["rounds"]), 1), "wall_seconds": wall,
            "note": "Flower deployment runtime, insecure mode (no TLS)"
                    + (", emulated WAN" if wan is not None else "")}


def main(argv: list[str] | None = None) -> None:
    """Run the Flower row alone and print it as JSON."""
    parser = argparse.ArgumentParser(prog="python -m splitnet.bench.flower")
    parser.add_argument("--out", type=Path, default=Path("results/bench-flower"))
    parser.add_argument("--quick", action="store_true")
    for flag in ("clients", "rounds", "epochs"):
        parser.add_argument(f"--{flag}", type=int)
    parser.add_argument("--model", default="CNN")
    parser.add_argument("--dataset", default="DIGITS")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    opts = bench_options(args.out, quick=args.quick, model=args.model, dataset=args.dataset,
                         clients=args.clients, rounds=args.rounds, epochs=args.epochs,
                         seed=args.seed)
    print(json.dumps(run_flower(opts, opts.out / "flower"), indent=2))


if __name__ == "__main__":
    main()
