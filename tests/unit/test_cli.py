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
     ["--sizes 'a'", "--receivers '0'", "--cap 0: expected a finite positive MiB/s"]),
    (["bench", "transfer", "--payload", "0", "--cap", "nan", "--exchange", "-5"],
     ["--payload 0: expected a whole number of MiB ≥ 1", "--cap nan: expected",
      "--exchange -5: expected MiB ≥ 0"]),
    (["bench", "transfer", "--cap", "inf"], ["--cap inf: expected a finite positive MiB/s"]),
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


@pytest.mark.parametrize(("args", "message"), [
    (["--epochs", "0"], "--epochs 0: expected a whole number ≥ 1"),
    (["--batch-size", "0"], "--batch-size 0: expected"),
    (["--repeat", "0"], "--repeat 0: expected"),
    (["--model", "bert", "--epochs", "-1"], "--epochs -1: expected"),
    (["--rounds", "0"], "--rounds 0: expected"),
    (["--rounds", "1"], "--rounds 1: expected at least 2 (the first round warms up"),
    (["--slowdown", "1,1,8,8,inf"], "--slowdown 1,1,8,8,inf: expected 5 finite factors"),
    (["--slowdown", "1,1,nan,8,1"], "--slowdown 1,1,nan,8,1: expected"),
    (["--budget", "inf"], "--budget inf: expected a positive number"),
    (["--budget", "nan"], "--budget nan: expected a positive number")])
def test_bench_placement_refuses_a_bad_count_before_running_anything(args, message, tmp_path,
                                                                    capsys):
    out = tmp_path / "bench"
    assert main(["bench", "placement", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_out_folder_that_cannot_be_made_is_one_clean_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert main(["bench", "placement", "--rounds", "2", "--out", str(blocker / "x")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(blocker) in err and "internal error" not in err


@pytest.mark.parametrize(("flag", "configured", "expected"), [
    (None, "auto", "on"), (None, "on", "on"), (None, "off", "off"),
    ("on", "off", "on"), ("off", "auto", "off")])
def test_splitnet_local_follows_the_flag_then_the_configurations_tls_off(flag, configured,
                                                                         expected):
    from splitnet.cli.commands import local_tls

    assert local_tls(flag, configured) == expected


@pytest.mark.parametrize(("args", "field", "value"), [
    (["bench", "reduce", "--model", "cnn", "--dataset", "digits"], "model", "CNN"),
    (["bench", "reduce", "--model", "Bert"], "model", "BERT"),
    (["bench", "reduce", "--dataset", "synthetic"], "dataset", "SYNTHETIC"),
    (["bench", "--model", "resnet18"], "model", "RESNET18"),
    (["bench", "placement", "--model", "BERT"], "model", "bert"),
    (["bench", "placement"], "model", "cnn")])
def test_bench_models_and_datasets_are_taken_in_any_case(args, field, value):
    from splitnet.cli import build_parser

    assert getattr(build_parser().parse_args(args), field) == value


@pytest.mark.parametrize(("args", "message"), [
    (["bench", "reduce", "--model", "foo"], "argument --model: invalid choice: 'FOO'"),
    (["bench", "reduce", "--dataset", "foo"], "argument --dataset: invalid choice: 'FOO'"),
    (["bench", "placement", "--model", "resnet18"], "argument --model: invalid choice"),
    (["bench", "--model", "foo"], "argument --model: invalid choice")])
def test_bench_refuses_an_unknown_model_naming_the_flag(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_reduce_checks_rate_before_running(monkeypatch, tmp_path, capsys):
    from splitnet.bench import reduce_cost

    monkeypatch.setattr(reduce_cost, "run_reduce_bench", lambda *a, **k: pytest.fail("ran"))
    assert main(["bench", "reduce", "--rate", "abc", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--rate 'abc': expected a positive tc rate" in err and "--wan" not in err


def test_bench_reduce_rate_says_why_this_machine_cannot_emulate_a_wan(monkeypatch, tmp_path,
                                                                      capsys):
    from splitnet.bench import reduce_cost
    from splitnet.ops import wan

    monkeypatch.setattr(reduce_cost, "run_reduce_bench", lambda *a, **k: pytest.fail("ran"))
    monkeypatch.setattr(wan, "wan_unavailable", lambda: "WAN emulation needs root")
    assert main(["bench", "reduce", "--rate", "8mbit", "--out", str(tmp_path)]) == 2
    assert "--rate: WAN emulation needs root" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["missing/x.json", "folder"])
def test_profile_refuses_an_out_file_it_cannot_write_before_profiling(name, tmp_path,
                                                                      monkeypatch, capsys):
    from splitnet.ops import autoplan

    monkeypatch.setattr(autoplan, "profile_here", lambda *a, **k: pytest.fail("profiled"))
    (tmp_path / "folder").mkdir()
    out = tmp_path / name
    assert main(["profile", "--env-file", str(EXAMPLES / "cnn_all_local.env"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: " in err, err


@pytest.mark.parametrize(("args", "message"), [
    (["--auto", "--generate"], "--auto with --generate: pick one"),
    (["--auto", "--clients", "5"], "--clients with --auto: it is read only with --generate"),
    (["--auto", "--model", "CNN"], "--model with --auto: it is read only with --generate"),
    (["--auto", "--offload", "1:2=3"], "--offload with --auto: it is read only with --generate"),
    (["--auto", "--format", "json"], "--format json with --auto: --auto prints text only"),
    (["--profile", "p.json"], "--profile without --auto: it is read only with --auto"),
    (["--budget", "5"], "--budget without --auto: it is read only with --auto"),
    (["--generate", "--clients", "3", "--model", "CNN", "--budget", "5"],
     "--budget with --generate: it is read only with --auto"),
    (["--clients", "3"], "--clients without --generate: it is read only with --generate"),
    (["--generate", "--clients", "3", "--model", "CNN", "--env-file", "x.env"],
     "--env-file with --generate: --generate reads no configuration")])
def test_plan_refuses_a_flag_its_mode_would_ignore(args, message, monkeypatch, capsys):
    from splitnet.cli import commands

    monkeypatch.setattr(commands, "_prepare", lambda *a: pytest.fail("prepared"))
    assert main(["plan", *args]) == 2
    assert message in capsys.readouterr().err


def test_plan_generate_still_takes_its_own_flags(capsys):
    assert main(["plan", "--generate", "--clients", "3", "--model", "BERT", "--bert-model",
                 "mini", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("args", "flags"), [
    (["bench", "--rounds", "5", "--out", "X", "placement"], "--rounds, --out before 'placement'"),
    (["bench", "--model", "BERT", "placement"], "--model before 'placement'"),
    (["bench", "--quick", "checkpoints"], "--quick before 'checkpoints'"),
    (["bench", "--out=placement", "placement"], "--out before 'placement'")])
def test_bench_options_before_a_subcommand_are_refused_not_dropped(args, flags, monkeypatch,
                                                                   capsys):
    from splitnet.bench import checkpoint_cost, placement

    monkeypatch.setattr(placement, "run_placement_bench", lambda *a, **k: pytest.fail("ran"))
    monkeypatch.setattr(checkpoint_cost, "run_checkpoint_bench",
                        lambda *a, **k: pytest.fail("ran"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert flags in err and "put them after the subcommand" in err, err


def test_bench_options_after_the_subcommand_reach_it(monkeypatch, capsys):
    from splitnet.bench import placement

    seen = {}
    monkeypatch.setattr(placement, "run_placement_bench",
                        lambda out, slowdown, rounds, *a, **k: seen.update(rounds=rounds) or [])
    monkeypatch.setattr(placement, "placement_table", lambda *a: "table")
    assert main(["bench", "placement", "--rounds", "5", "--model", "BERT"]) == 0
    assert seen == {"rounds": 5}
