"""An empty value in the environment counts as unset (Note: empty means unset, config/load.py)."""

import io
import json
import subprocess

import pytest

from splitnet.config import load
from splitnet.config.load import merged_values
from splitnet.ops import local
from splitnet.ops.local_env import given_values
from splitnet.plan.plan import build_plan

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_environment_value_leaves_the_file_value(write_env, empty):
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="16", OPTIMIZER="adam")
    settings = load(path, environ={"BATCH_SIZE": empty, "OPTIMIZER": empty,
                                   "SIMULATION_STAGES_CLIENTS": empty})
    assert (settings.training.batch_size, settings.training.optimizer) == (16, "ADAM")
    assert settings.training.num_clients == 2


def test_an_empty_environment_value_without_a_file_value_is_the_default(write_env):
    settings = load(write_env(SIMULATION_STAGES_CLIENTS=TWO), environ={"BATCH_SIZE": ""})
    assert settings.training.batch_size == 32


def test_merged_values_takes_only_known_non_empty_keys_from_the_environment():
    merged = merged_values({"BATCH_SIZE": "16", "SEED": "3", "OTHER": "x"},
                           {"BATCH_SIZE": "", "SEED": "7", "HOME": "/root", "RUN_ID": " "})
    assert merged == {"BATCH_SIZE": "16", "SEED": "7", "OTHER": "x"}


def test_local_reads_settings_as_its_clients_do(write_env):
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, TORCH_THREADS="4")
    assert given_values(path, {"TORCH_THREADS": ""})["TORCH_THREADS"] == "4"
    assert given_values(path, {"TORCH_THREADS": "2"})["TORCH_THREADS"] == "2"
    assert "TORCH_THREADS" not in given_values(None, {"TORCH_THREADS": ""})


class _Exited:
    """A client process that has already exited 0, having written the run's summary."""

    def __init__(self, args, env, **_):
        self.env = env
        self.stdout = io.StringIO("")
        folder = local.run_folder(_Exited.results, env["RUN_ID"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps({"ok": True}))
        _Exited.started.append(self)

    def poll(self):
        return 0


@pytest.mark.parametrize("environ, file_value, expected", [
    ({"TORCH_THREADS": ""}, None, "1"),  # empty: unset, so local's own 1 (not torch's default)
    ({"TORCH_THREADS": ""}, "3", "3"),  # empty: the file's value stands
    ({}, None, "1"),
    ({"TORCH_THREADS": "2"}, "3", "2"),
])
def test_local_gives_its_clients_torch_threads_an_empty_environment_value_does_not_clear(
        tmp_path, write_env, monkeypatch, environ, file_value, expected):
    monkeypatch.delenv("TORCH_THREADS", raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    values = {"SIMULATION_STAGES_CLIENTS": TWO}
    if file_value is not None:
        values["TORCH_THREADS"] = file_value
    path = write_env(**values)
    _Exited.results, _Exited.started = tmp_path / "results", []
    monkeypatch.setattr(subprocess, "Popen", _Exited)
    plan = build_plan(load(path, environ={}).training)
    local.run_local(plan, path, tmp_path / "results", out=io.StringIO())
    assert [p.env["TORCH_THREADS"] for p in _Exited.started] == [expected, expected]
