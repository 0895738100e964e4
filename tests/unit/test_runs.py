"""Run folders: a run owns ``RESULTS_DIR/runs/<run id>``; ``latest`` points at the newest run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from splitnet.config import load
from splitnet.config.parsing import run_id
from splitnet.errors import ConfigError, ProtocolError
from splitnet.node.run import RunId
from splitnet.telemetry.results import ResultsWriter
from splitnet.telemetry.runs import baseline_of, new_run_id, point_latest, run_folder_of

from .test_round import SMALL, build, errors, run


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("value", ["a", "20261123T211500Z-3fa2", "run.1_x-2", "x" * 64])
def test_a_run_id_of_safe_characters_is_accepted(value):
    assert run_id(value) == value


@pytest.mark.parametrize("value", ["", ".", "..", "../x", "a/b", "x" * 65, "a b", "é", "a\n",
                                   "a\\b"])
def test_a_run_id_that_is_no_plain_folder_name_is_refused(value):
    with pytest.raises(ValueError, match="1 to 64 characters from A-Z a-z 0-9"):
        run_id(value)


def test_a_fresh_run_id_is_valid_and_differs():
    first, second = new_run_id(), new_run_id()
    assert run_id(first) == first and first != second


def test_run_id_setting_is_validated_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"RUN_ID='\.\./x'.*1 to 64 characters"):
        load(values={**SMALL, "RUN_ID": "../x", "RESULTS_DIR": str(tmp_path)})


def test_latest_is_swapped_to_the_new_run_and_stays_relative(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "b").mkdir()
    point_latest(tmp_path, "a")
    point_latest(tmp_path, "b")
    latest = tmp_path / "latest"
    assert latest.is_symlink() and str(latest.readlink()) == "runs/b"
    assert latest.resolve() == (tmp_path / "runs" / "b").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "runs"]  # no temporary left
    assert run_folder_of(tmp_path) == tmp_path / "runs" / "b"


def test_latest_in_the_way_as_a_folder_is_a_named_error(tmp_path):
    (tmp_path / "latest").mkdir()
    (tmp_path / "latest" / "keep").write_text("x")
    with pytest.raises(ConfigError, match=r"cannot point .*latest at runs/a"):
        ResultsWriter(tmp_path).start("a")
    assert (tmp_path / "latest" / "keep").read_text() == "x"


def test_a_reader_reads_a_run_folder_directly_or_latest(tmp_path):
    writer = ResultsWriter(tmp_path)
    folder = writer.start()
    writer.start_metrics()
    assert run_folder_of(folder) == folder and run_folder_of(tmp_path) == folder
    with pytest.raises(ConfigError, match="neither a run folder"):
        run_folder_of(tmp_path / "runs")


def test_run_id_of_a_finished_run_is_refused_naming_its_folder(tmp_path):
    writer = ResultsWriter(tmp_path)
    writer.start("one")
    writer.write_summary({"rounds": 1})
    with pytest.raises(ConfigError, match=r"RUN_ID.*'one' names a finished run \(.*runs/one"):
        ResultsWriter(tmp_path).start("one")


def test_a_malformed_or_other_run_id_from_the_aggregator_is_refused(tmp_path):
    run_ = RunId(ResultsWriter(tmp_path), me=2, aggregator=1, configured=None)
    with pytest.raises(ProtocolError, match=r"client 2 refused the run id '\.\./up' of client 1"):
        run_.learn(1, "../up")
    run_.learn(3, "../ignored")  # only the aggregator's announcement counts
    assert not (tmp_path / "runs").exists()  # nothing opened before the run is known
    run_.learn(1, "r1")
    assert (tmp_path / "runs" / "r1").is_dir()
    with pytest.raises(ProtocolError, match=r"announced run 'r2', but client 2 is in run 'r1'"):
        run_.learn(1, "r2")


def test_every_client_of_a_run_writes_into_its_folder_and_a_second_run_leaves_it(tmp_path):
    nodes, _ = build(SMALL, tmp_path)
    assert not errors(run(nodes))
    (first,) = (tmp_path / "runs").iterdir()
    before = digest(first)
    assert {"summary.json", "metrics.csv", "timeline-client1.csv", "timeline-client2.csv",
            "timeline-client3.csv", "client-2.json", "client-3.json"} <= set(before)
    nodes, _ = build({**SMALL, "TRAINING_NUM_ROUNDS": "1", "RESUME": "never"}, tmp_path)
    assert not errors(run(nodes))
    second = run_folder_of(tmp_path)
    assert second != first and digest(first) == before
    assert {n.results.root for n in nodes} == {second}


def test_a_client_with_another_run_id_is_refused_at_join(tmp_path):
    nodes, _ = build({**SMALL, "JOIN_TIMEOUT": "2"}, tmp_path)
    other = build({**SMALL, "RUN_ID": "mine"}, tmp_path)[0][1]
    nodes[1].settings = other.settings
    results = run(nodes)
    assert any(isinstance(r, ProtocolError) and "but client 2 is in run 'mine' (its RUN_ID)"
               in str(r) for r in results), results
    assert not (tmp_path / "runs" / "mine").exists()


def test_a_reader_prefers_latest_over_files_of_an_older_layout(tmp_path):
    (tmp_path / "summary.json").write_text("{}")  # written at the top by an older version
    writer = ResultsWriter(tmp_path)
    folder = writer.start()
    assert run_folder_of(tmp_path) == folder


def test_a_malformed_run_id_from_the_aggregator_is_a_refused_join_naming_it(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(RunId, "announced", lambda self: "../../etc")
    nodes, _ = build({**SMALL, "JOIN_TIMEOUT": "2"}, tmp_path)
    results = run(nodes)
    assert all(isinstance(r, BaseException) for r in results), results
    assert any(isinstance(r, ProtocolError) and "refused the run id '../../etc' of client 1 (the "
               "aggregator): expected 1 to 64 characters" in str(r) for r in results), results
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "runs"]
    assert len(list((tmp_path / "runs").iterdir())) == 1  # only the aggregator's own folder


def test_a_run_id_of_an_unfinished_run_goes_on_in_its_folder(tmp_path, caplog):
    (tmp_path / "runs" / "again").mkdir(parents=True)
    (tmp_path / "runs" / "again" / "metrics.csv").write_text("round\n")  # what the run wrote
    with caplog.at_level("INFO", logger="splitnet.telemetry"):
        assert ResultsWriter(tmp_path).start("again") == tmp_path / "runs" / "again"
    assert "RUN_ID=again: going on in" in caplog.text


def test_the_baseline_is_found_from_results_dir_or_from_a_run_folder(tmp_path):
    writer = ResultsWriter(tmp_path)
    folder = writer.start()
    writer.start_metrics()
    assert baseline_of(tmp_path) is None and baseline_of(folder) is None
    (tmp_path / "baseline").mkdir()
    assert baseline_of(tmp_path) == tmp_path / "baseline"
    assert baseline_of(folder) == tmp_path / "baseline"
