"""``splitnet local``: what each client is given (Note: local environment), without processes."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from splitnet.cli import main
from splitnet.ops import local
from splitnet.telemetry.results import ResultsWriter
from splitnet.telemetry.runs import run_folder

from ..conftest import plan_of

EXAMPLE = Path(__file__).parents[2] / "example_configurations" / "cnn_all_local.env"


class _Proc:
    """A client that exits at once, having written the run's summary."""

    def __init__(self, args: list[str], env: dict[str, str], **_: object) -> None:
        self.env = env
        self.stdout = io.StringIO("")
        folder = run_folder(Path(env["RESULTS_DIR"]), env["RUN_ID"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text("{}")

    def poll(self) -> int:
        return 0


def _envs(monkeypatch, tmp_path: Path, text: str = "", tls: str = "on",
          **environ: str) -> list[dict[str, str]]:
    """Run ``local`` over the example plus ``text`` with fake clients; return their envs."""
    env_file = tmp_path / "test.env"
    env_file.write_text(EXAMPLE.read_text() + "\n" + text + "\n")
    started: list[_Proc] = []

    def popen(args: list[str], env: dict[str, str], **kw: object) -> _Proc:
        started.append(_Proc(args, env, **kw))
        return started[-1]

    monkeypatch.setattr(local.subprocess, "Popen", popen)
    monkeypatch.setattr(local, "merge_timelines", lambda folder: None)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    local.run_local(plan_of("cnn_all_local.env"), env_file, tmp_path / "results",
                    out=io.StringIO(), tls=tls)
    return [proc.env for proc in started]


def test_each_client_gets_its_own_tensor_port_when_the_file_sets_one(monkeypatch, tmp_path):
    envs = _envs(monkeypatch, tmp_path, "TENSOR_PORT=50060")
    for key in ("TENSOR_PORT", "TORRENT_PORT", "METRICS_PORT"):
        assert len({env[key] for env in envs}) == 5, key
    ports = [env[k] for env in envs for k in ("TENSOR_PORT", "TORRENT_PORT", "METRICS_PORT")]
    grpc = [entry.rsplit(":", 1)[1] for entry in envs[0]["PEERS"].split(",")]
    assert len(set(ports + grpc)) == 20


def test_metrics_port_zero_stays_off(monkeypatch, tmp_path):
    envs = _envs(monkeypatch, tmp_path, "METRICS_PORT=0")
    assert {env["METRICS_PORT"] for env in envs} == {"0"}
    targets = json.loads((tmp_path / "results" / "prometheus-targets.json").read_text())
    assert targets[0]["targets"] == []


def test_an_explicit_checkpoint_dir_and_torch_threads_are_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCH_THREADS", raising=False)
    monkeypatch.delenv("CHECKPOINT_DIR", raising=False)
    envs = _envs(monkeypatch, tmp_path, "CHECKPOINT_DIR=./mine\nTORCH_THREADS=3")
    assert all(env["CHECKPOINT_DIR"] == "./mine" for env in envs)
    assert all(env["TORCH_THREADS"] == "3" for env in envs)


def test_the_defaults_are_the_runs_own_checkpoints_and_one_thread(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCH_THREADS", raising=False)
    monkeypatch.delenv("CHECKPOINT_DIR", raising=False)
    env = _envs(monkeypatch, tmp_path, "TORCH_THREADS=")[0]
    assert env["TORCH_THREADS"] == "1"
    assert env["CHECKPOINT_DIR"].endswith(f"{env['RUN_ID']}/checkpoints")


def test_tls_off_makes_no_ca(monkeypatch, tmp_path):
    env = _envs(monkeypatch, tmp_path, tls="off")[0]
    assert env["TLS"] == "off" and "TLS_DIR" not in env
    assert not (run_folder(tmp_path / "results", env["RUN_ID"]) / "certs").exists()


def test_tls_on_makes_the_runs_ca(monkeypatch, tmp_path):
    env = _envs(monkeypatch, tmp_path)[0]
    assert env["TLS"] == "on" and Path(env["TLS_DIR"], "ca.crt").is_file()


def test_tls_off_with_metrics_tls_on_is_refused_before_anything_starts(tmp_path, capsys,
                                                                       monkeypatch):
    env_file = tmp_path / "test.env"
    env_file.write_text(EXAMPLE.read_text() + f"\nMETRICS_TLS=on\nRESULTS_DIR={tmp_path}/r\n")
    monkeypatch.setattr(local.subprocess, "Popen", lambda *a, **k: pytest.fail("it started"))
    assert main(["local", "--env-file", str(env_file), "--tls", "off"]) == 2
    err = capsys.readouterr().err
    assert "--tls off with METRICS_TLS=on" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "runs").exists() or not any((tmp_path / "r" / "runs").iterdir())


def test_a_fresh_local_run_does_not_say_it_goes_on(tmp_path, caplog):
    folder = run_folder(tmp_path, "fresh-1")
    (folder / "certs").mkdir(parents=True)  # what splitnet local writes before its clients
    with caplog.at_level(logging.INFO):
        ResultsWriter(tmp_path).start("fresh-1")
    assert "going on" not in caplog.text
    (folder / "metrics.csv").write_text("round\n")
    with caplog.at_level(logging.INFO):
        ResultsWriter(tmp_path).start("fresh-1")
    assert "going on" in caplog.text
