"""``splitnet report`` on damaged result files: exit 2 naming the file and the line (Note: damaged
results, telemetry/report_input.py); ``RESULTS_DIR`` from the env file."""

import json

import pytest

from splitnet.cli import main
from splitnet.telemetry.records import METRIC_COLUMNS, TIMELINE_COLUMNS
from splitnet.telemetry.report_input import read_metrics, results_dir_setting

METRICS = [",".join(METRIC_COLUMNS),
           "1,0.5,0.4,1.2,1.5,0.8,1000,1000,640",
           "2,0.75,0.7,0.9,1.1,0.7,1000,1000,640"]
TIMELINE = [",".join(TIMELINE_COLUMNS),
            "1,1,1,0,0,100.0,100.5,compute,,0,0.4",
            "1,1,1,0,0,100.5,100.6,transfer,2,4096,0",
            "2,1,2,0,0,100.6,101.0,compute,,0,0.3"]


def _run(folder, metrics=METRICS, timeline=TIMELINE, summary=None):
    """Write a run folder's result files; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.csv").write_text("\n".join(metrics) + "\n")
    (folder / "timeline.csv").write_text("\n".join(timeline) + "\n")
    if summary is not None:
        (folder / "summary.json").write_text(summary)
    return folder


def _refused(folder, capsys, *extra):
    assert main(["report", str(folder), *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return err


def test_a_sound_run_folder_gets_its_report(tmp_path, capsys):
    folder = _run(tmp_path / "run", summary=json.dumps({"model": "CNN", "dataset": "DIGITS",
                                                        "clients": 1}))
    assert main(["report", str(folder)]) == 0
    text = (folder / "report" / "report.md").read_text()
    assert "CNN on DIGITS, 1 client, 2 rounds." in text and "final test accuracy 0.7500" in text
    assert "| 1->2 | 4096 |" in text


@pytest.mark.parametrize("line, message", [
    ("3,0.8,0.7", "metrics.csv line 4: 3 values, expected 9 (one per header column; a cut-off"),
    ("3,abc,0.7,0.9,1.1,0.7,1000,1000,640", "metrics.csv line 4: test_accuracy='abc': expected "
                                            "a number"),
    ("3,inf,0.7,0.9,1.1,0.7,1000,1000,640", "line 4: test_accuracy='inf': expected a score from "
                                            "0 to 1"),
    ("3,0.8,nan,0.9,1.1,0.7,1000,1000,640", "line 4: f1_macro='nan': expected a score from 0 to 1"),
    ("3,0.8,0.7,-1,1.1,0.7,1000,1000,640", "line 4: test_loss='-1': expected a loss >= 0"),
    ("x,0.8,0.7,0.9,1.1,0.7,1000,1000,640", "line 4: round='x': expected a whole number >= 1"),
    ("3,0_8,0.7,0.9,1.1,0.7,1000,1000,640", "line 4: test_accuracy='0_8': expected a number"),
])
def test_a_damaged_metrics_line_is_refused_by_file_and_line(line, message, tmp_path, capsys):
    folder = _run(tmp_path / "run", metrics=[*METRICS, line])
    assert message in _refused(folder, capsys)


def test_a_diverged_runs_nan_loss_is_read_not_refused(tmp_path):
    folder = _run(tmp_path / "run", metrics=[*METRICS, "3,0.1,0.02,nan,inf,0.7,1,1,640"])
    assert read_metrics(folder / "metrics.csv")[-1].round == 3


@pytest.mark.parametrize("line, message", [
    ("2,1,2,0,0,101.0,101.2,sleep,,0,0", "timeline.csv line 5: kind='sleep': expected one of "
                                         "compute, transfer"),
    ("0,1,2,0,0,101.0,101.2,compute,,0,0", "line 5: client='0': expected a whole number >= 1"),
    ("2,1,2,0,0,101.0,nan,compute,,0,0", "line 5: end='nan': expected seconds since the epoch"),
    ("2,1,2,0,0,101.0,101.2,transfer,1,-4,0", "line 5: bytes='-4': expected a whole number"),
    ("2,1,2,0,0,101.0,101", "timeline.csv line 5: 7 values, expected 11"),
])
def test_a_damaged_timeline_line_is_refused_by_file_and_line(line, message, tmp_path, capsys):
    folder = _run(tmp_path / "run", timeline=[*TIMELINE, line])
    assert message in _refused(folder, capsys)


def test_a_wrong_header_or_empty_file_is_refused(tmp_path, capsys):
    folder = _run(tmp_path / "run", metrics=["round,accuracy", "1,0.5"])
    assert "metrics.csv line 1: wrong header: no test_accuracy, f1_macro" in _refused(folder,
                                                                                     capsys)
    (folder / "metrics.csv").write_text("")
    assert "metrics.csv: empty; expected a header line" in _refused(folder, capsys)
    (folder / "metrics.csv").write_bytes(",".join(METRIC_COLUMNS).encode() + b"\n\xff\xfe\n")
    assert "metrics.csv line 2: not UTF-8 text" in _refused(folder, capsys)


@pytest.mark.parametrize("text, message", [
    ('{"model": "CNN", ', "summary.json line 1: Expecting property name"),
    ("[1, 2]", "summary.json: a JSON list; expected the run's summary as a JSON object"),
    ('{"clients": "five"}', 'summary.json: clients="five": expected a whole number'),
])
def test_a_bad_summary_is_refused(text, message, tmp_path, capsys):
    folder = _run(tmp_path / "run", summary=text)
    assert message in _refused(folder, capsys)


def test_a_baseline_without_metrics_names_the_flag(tmp_path, capsys):
    folder = _run(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    err = _refused(folder, capsys, "--baseline", str(tmp_path / "empty"))
    assert f"--baseline {tmp_path / 'empty'}: no metrics.csv in it" in err
    _run(tmp_path / "base", metrics=[*METRICS, "3,1.5,0.7,0.9,1.1,0.7,1000,1000,640"])
    err = _refused(folder, capsys, "--baseline", str(tmp_path / "base"))
    assert "base/metrics.csv line 4: test_accuracy='1.5'" in err
    (tmp_path / "results" / "baseline").mkdir(parents=True)  # the default: RESULTS_DIR/baseline
    _run(tmp_path / "results" / "runs" / "r1")
    err = _refused(tmp_path / "results" / "runs" / "r1", capsys)
    assert "baseline holds no metrics.csv (a baseline that did not finish a round?)" in err


def test_results_dir_is_read_from_the_env_file_and_the_environment_wins(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.delenv("RESULTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    _run(tmp_path / "elsewhere" / "runs" / "r1", metrics=[*METRICS, "3,0.8"])
    (tmp_path / "elsewhere" / "latest").symlink_to("runs/r1")
    (tmp_path / ".env").write_text("RESULTS_DIR=elsewhere\n")
    assert "elsewhere/runs/r1/metrics.csv line 4" in _refused_here(capsys)
    other = tmp_path / "other.env"
    other.write_text("RESULTS_DIR=nowhere\n")
    assert main(["report", "--env-file", str(other)]) == 2
    assert "nowhere is neither a run folder" in capsys.readouterr().err
    assert results_dir_setting(other, environ={"RESULTS_DIR": "env"}) == tmp_path.__class__("env")
    assert results_dir_setting(other, environ={"RESULTS_DIR": " "}).name == "nowhere"
    assert main(["report", "--env-file", str(tmp_path / "missing.env")]) == 2
    assert "missing.env" in capsys.readouterr().err


def _refused_here(capsys):
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return err
