import json
import subprocess
import sys

import pytest

from splitnet.cli import main
from splitnet.config import load
from splitnet.plan.rules import check_placement

from ..conftest import EXAMPLES, ROOT

ENV_FILES = [*sorted(EXAMPLES.glob("*.env")), ROOT / ".env"]


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_every_example_configuration_validates(path, capsys):
    assert main(["validate", "--env-file", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Valid plan:") and "Fingerprint" in out


def test_examples_cover_the_promised_models():
    models = {load(p, environ={}).training.model for p in ENV_FILES}
    assert {"CNN", "RESNET18", "RESNET50", "BERT"} <= models


def test_default_env_offloads_and_plan_shows_the_table(capsys):
    assert main(["plan", "--env-file", str(ROOT / ".env")]) == 0
    out = capsys.readouterr().out
    assert "owner 1            1  1 2*  1" in out
    assert "client 5 (owner): 5_1 3_2 2_3" in out


def test_plan_json_is_machine_readable(capsys):
    assert main(["plan", "--env-file", str(ROOT / ".env"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["placement"]["3"]["2"] == 5 and data["dry_run"]["completes"]
    assert len(data["fingerprint"]) == 16


def test_broken_config_exits_2_listing_every_violation(write_env, capsys):
    path = write_env(SIMULATION_STAGES_CLIENTS='[["1_1","1-2"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]',
                     BATCH_SIZE="zero")
    assert main(["validate", "--env-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "BATCH_SIZE='zero'" in err and "task '1-2' in client 1's list" in err
    assert "Traceback" not in err


def test_a_config_for_another_model_names_the_setting(write_env, capsys):
    path = write_env((ROOT / ".env").read_text(), CURRENT_MODEL="RESNET50",
                     CURRENT_DATASET="SYNTHETIC")
    assert main(["validate", "--env-file", str(path)]) == 2
    assert "config has 4 partitions (8 stages), CURRENT_MODEL=RESNET50 has 18" in (
        capsys.readouterr().err)


def test_fingerprint_changes_with_what_must_match(write_env, capsys):
    base = (ROOT / ".env").read_text()
    prints = []
    for extra in ("", "SEED=7", "CLIENT_NUMBER=3"):
        path = write_env(base + "\n" + extra)
        main(["validate", "--env-file", str(path)])
        prints.append(capsys.readouterr().out.rsplit("Fingerprint ", 1)[1])
    assert prints[0] != prints[1]  # the seed changes the math
    assert prints[0] == prints[2]  # which client this is does not


@pytest.mark.parametrize("model, p", [("CNN", 4), ("RESNET18", 10), ("RESNET50", 18)])
def test_generated_lists_validate(model, p, capsys):
    assert main(["plan", "--generate", "--clients", "5", "--model", model,
                 "--offload", f"1:2-{p - 1}=4", "--offload", "2:2=5", "--format", "json"]) == 0
    lists = json.loads(capsys.readouterr().out)
    assert check_placement(lists, 5, p, model)[1] == []
    assert f"1_{p - 1}" in lists[3]


def test_generate_with_helper_and_env_line(capsys):
    assert main(["plan", "--generate", "--clients", "2", "--partitions", "4", "--owners", "1",
                 "--offload", "1:2-3=2"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == 'SIMULATION_STAGES_CLIENTS=[["1_1","1_4","1_5","1_8"],["1_2","1_3","1_6","1_7"]]'


@pytest.mark.parametrize("args, message", [
    (["--clients", "5", "--model", "CNN", "--offload", "1:1=3"], "[co-location]"),
    (["--clients", "5", "--model", "CNN", "--offload", "1-2"], "expected 'OWNER:PARTITIONS=RUNNER'"),
    (["--clients", "5", "--model", "CNN", "--offload", "1:2=9"], "expected a client from 1 to 5"),
    (["--model", "CNN"], "--generate needs --clients N"),
    (["--clients", "2"], "exactly one of --partitions P or --model NAME"),
])
def test_generate_rejects_bad_requests(args, message, capsys):
    assert main(["plan", "--generate", *args]) == 2
    assert message in capsys.readouterr().err


def test_module_entry_point_runs_without_traceback_on_garbage(tmp_path):
    path = tmp_path / "garbage.env"
    path.write_bytes(b"SIMULATION_STAGES_CLIENTS=" + b"[(" * 50_000 + b"\xff")
    done = subprocess.run([sys.executable, "-m", "splitnet", "validate", "--env-file", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "configuration error" in done.stderr


@pytest.mark.parametrize("args, messages", [
    (["bench", "--clients", "1", "--shaped", "fast", "--lr", "0"],
     ["--clients 1: expected a whole number of at least 2", "--shaped 'fast'",
      "--batch-size and --lr must be positive"]),
    (["bench", "transfer", "--sizes", "a", "--receivers", "0", "--cap", "0"],
     ["--sizes 'a'", "--receivers '0'", "--payload and --cap must be positive"]),
    (["compose", "--clients", "0"], ["--clients 0: expected 1..1024"]),
])
def test_bad_command_lines_exit_2_naming_every_problem(args, messages, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert all(message in err for message in messages), err


def test_compose_to_stdout_prints_the_file(capsys):
    from splitnet.ops.compose import render_compose

    assert main(["compose", "--clients", "3", "--output", "-"]) == 0
    assert capsys.readouterr().out == render_compose(3)


def test_certs_makes_a_cluster_and_refuses_to_overwrite_it(tmp_path, capsys):
    from splitnet.transport.tls import TlsFiles, load_identity

    folder = tmp_path / "certs"
    assert main(["certs", "--clients", "2", "--out", str(folder), "--host", "10.0.0.9"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert load_identity(TlsFiles.in_folder(folder, 2), 2).me == 2
    assert main(["certs", "--clients", "2", "--out", str(folder)]) == 2
    assert "ca.crt exists" in capsys.readouterr().err
    assert main(["certs", "--add", "3", "--out", str(folder)]) == 0
    assert load_identity(TlsFiles.in_folder(folder, 3), 3).me == 3
    assert main(["certs", "--out", str(folder)]) == 2
    assert "certs needs --clients N" in capsys.readouterr().err
    assert main(["certs", "--clients", "1", "--days", "0", "--out", str(tmp_path / "x")]) == 2
