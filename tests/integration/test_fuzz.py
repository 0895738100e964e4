"""The wire fuzzer against a live run: a fuzzed client keeps training as an undisturbed one does.

Runs of the same small three-client job as processes on loopback: one undisturbed, and one
whose client 2 gets ``COUNT`` mutated inputs on each listener (gRPC, direct channel) while it
trains (Note: admissible impersonation in :mod:`tests.integration.fuzz`), once with the shared
token and once with mutual TLS (the fuzzer holds cluster certificates for numbers outside the
plan, so its inputs arrive after a completed handshake). Both must exit 0 with
no traceback, end with the same test accuracy, and the fuzzed client's peak RSS may exceed the
undisturbed one's by less than 50 MiB.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from splitnet.ops.certs import make_certs
from splitnet.transport.ports import free_ports
from splitnet.transport.tls import TlsFiles, load_identity
from tests.integration.fuzz import Fuzzer
from tests.integration.test_processes import THREE

pytestmark = pytest.mark.integration

COUNT = 10_000
SEED = 12
TOKEN = "fuzz-s3cret-token"
ROUNDS = 30  # about 30 s undisturbed on two cores: long enough to fuzz it throughout
TARGET = 2  # not the aggregator (client 1)
MIB = 1024 * 1024


def _env_file(tmp_path: Path, name: str) -> Path:
    values = {"CURRENT_MODEL": "CNN", "CURRENT_DATASET": "DIGITS", "BATCH_SIZE": "8",
              "LEARNING_RATE": "0.05", "TRAINING_NUM_ROUNDS": str(ROUNDS),
              "TRAINING_NUM_EPOCHS": "2", "SIMULATION_STAGES_CLIENTS": THREE,
              "RESULTS_DIR": str(tmp_path / name),
              "CHECKPOINT_DIR": str(tmp_path / name / "checkpoints"), "PEER_TIMEOUT": "60", "JOIN_TIMEOUT": "120"}
    path = tmp_path / f"{name}.env"
    path.write_text("\n".join(f"{k}={v}" for k, v in values.items()) + "\n")
    return path


def _rss(pid: int) -> tuple[int, int]:
    """Return (VmRSS, VmHWM) of ``pid`` in bytes, or (0, 0) once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines
              if line.startswith(("VmRSS", "VmHWM"))}
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class _Run:
    """Three ``splitnet run`` processes on loopback, their output collected."""

    def __init__(self, tmp_path: Path, name: str, certs: Path | None = None) -> None:
        self.results = tmp_path / name
        path = _env_file(tmp_path, name)
        ports = free_ports(4)
        self.grpc_port, self.tensor_port = ports[TARGET - 1], ports[3]
        env = {**os.environ, "PEERS": ",".join(f"127.0.0.1:{p}" for p in ports[:3]),
               "TORRENT_PORT": "0", "METRICS_PORT": "0", "SPLITNET_TOKEN": TOKEN,
               "LISTEN_HOST": "127.0.0.1", "TORCH_THREADS": "1",
               **({"TLS": "on", "TLS_DIR": str(certs)} if certs else {"TLS": "off"})}
        self.procs = {k: subprocess.Popen(
            [sys.executable, "-m", "splitnet", "run", "--env-file", str(path)],
            env={**env, "CLIENT_NUMBER": str(k),
                 **({"TENSOR_PORT": str(self.tensor_port)} if k == TARGET else {})},
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for k in (1, 2, 3)}
        self.output: dict[int, list[str]] = {k: [] for k in self.procs}
        self.readers = [threading.Thread(target=lambda k=k: self.output[k].extend(
            self.procs[k].stdout or []), daemon=True) for k in self.procs]
        for reader in self.readers:
            reader.start()
        self.peak = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        pid = self.procs[TARGET].pid
        while self._sampling:
            rss, hwm = _rss(pid)
            self.peak = max(self.peak, rss, hwm)
            time.sleep(0.2)

    def wait_training(self, timeout: float = 120) -> None:
        """Return once the fuzzed client trains (every process is killed if it does not)."""
        deadline = time.monotonic() + timeout
        try:
            while not any("round 1/" in line for line in self.output[TARGET]):
                assert time.monotonic() < deadline, self.output
                assert all(p.poll() is None for p in self.procs.values()), self.output
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill what still runs; collect the output."""
        self._sampling = False
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        for reader in self.readers:
            reader.join(timeout=10)
        for p in self.procs.values():
            if p.stdout is not None:
                p.stdout.close()

    def finish(self, timeout: float = 300) -> tuple[dict[str, object], str]:
        """Wait for every process; return the run's summary and everybody's output."""
        try:
            codes = {k: p.wait(timeout=timeout) for k, p in self.procs.items()}
        finally:
            self.stop()
        logs = "".join(line for k in self.output for line in self.output[k])
        assert codes == {1: 0, 2: 0, 3: 0}, logs[-5000:]
        summary: dict[str, object] = json.loads(next(self.results.rglob("summary.json"))
                                                .read_text())
        return summary, logs


def _no_traceback(logs: str) -> None:
    assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000:][:6000]


def _undisturbed(root: Path, certs: Path | None) -> tuple[_Run, dict[str, object]]:
    quiet = _Run(root, "quiet", certs)
    quiet.wait_training()
    expected, logs = quiet.finish()
    _no_traceback(logs)
    return quiet, expected


@pytest.mark.parametrize("tls", [False, True], ids=["token", "tls"])
def test_fuzzed_client_trains_as_an_undisturbed_one(tmp_path, tls):
    identities, certs = None, None
    if tls:
        certs = tmp_path / "certs"
        make_certs(certs, range(1, 8))  # 4..7: the fuzzer's stranger numbers
        identities = {k: load_identity(TlsFiles.in_folder(certs, k), k) for k in range(4, 8)}
    quiet, expected = _undisturbed(tmp_path, certs)  # in the same mode: TLS takes memory too
    run = _Run(tmp_path, "fuzzed", certs)
    run.wait_training()
    fuzzer = Fuzzer(SEED, TOKEN, num_clients=3, rounds=ROUNDS, identities=identities,
                    target=TARGET)

    async def fuzz() -> tuple:
        return await asyncio.gather(
            fuzzer.fuzz_grpc(f"127.0.0.1:{run.grpc_port}", COUNT),
            fuzzer.fuzz_channel("127.0.0.1", run.tensor_port, COUNT))

    started = time.monotonic()
    try:
        grpc_report, channel_report = asyncio.run(asyncio.wait_for(fuzz(), 400))
        alive = all(p.poll() is None for p in run.procs.values())
    finally:
        elapsed = time.monotonic() - started
        summary, logs = run.finish()
    assert alive, "the run ended before the fuzzer was done; make it longer (ROUNDS)"
    print(f"fuzzed for {elapsed:.0f}s; gRPC {grpc_report}; channel {channel_report}; "
          f"peak RSS {run.peak / MIB:.0f} MiB vs {quiet.peak / MIB:.0f} MiB undisturbed")
    assert summary["test_accuracy"] == expected["test_accuracy"]
    assert summary["f1_macro"] == expected["f1_macro"]
    assert grpc_report.sent >= COUNT and channel_report.sent >= COUNT
    assert grpc_report.hangs == [] and channel_report.hangs == []
    assert run.peak - quiet.peak < 50 * MIB
    if tls:  # the inputs got past the handshake: hellos were read, calls were answered
        assert channel_report.outcomes["hello accepted"] > 0, channel_report.outcomes
        assert sum(v for k, v in grpc_report.outcomes.items()
                   if not k.endswith(" UNAVAILABLE")) >= COUNT // 2, grpc_report.outcomes
    failed = [key for key in grpc_report.outcomes if key.endswith((" UNKNOWN", " INTERNAL"))]
    assert not failed, grpc_report.outcomes
    _no_traceback(logs)
