import csv
import json

import pytest

from splitnet.errors import ProtocolError
from splitnet.telemetry.records import (
    METRIC_COLUMNS,
    TIMELINE_COLUMNS,
    Exchange,
    OwnerStats,
    Pipelined,
    RoundReport,
    RoundRow,
    TimelineRow,
    Trained,
    run_summary,
)
from splitnet.telemetry.results import ResultsWriter, merge_timelines


def test_round_report_round_trips_through_its_json():
    report = RoundReport(2, 3, (OwnerStats(1, 64, 2, 1.25), OwnerStats(4, 32, 1, 0.5)))
    assert RoundReport.from_json(report.to_json(), 2, 3) == report
    assert RoundReport.from_json(RoundReport(5, 0).to_json(), 5, 0).owners == ()


def test_round_report_json_is_the_wire_format():
    text = RoundReport(2, 0, (OwnerStats(1, 10, 1, 0.5),)).to_json()
    assert json.loads(text) == {"owners": [{"owner": 1, "samples": 10, "batches": 1,
                                            "loss_sum": 0.5}]}


GOOD = {"owner": 1, "samples": 10, "batches": 1, "loss_sum": 0.5}


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ("", "not JSON"),
    ("[]", r"expected a JSON object, got \[\]"),
    ("3", "expected a JSON object"),
    ("{}", "missing 'owners'"),
    ('{"owners": {}}', "owners: expected a list"),
    ('{"owners": [3]}', r"owners\[0\]: expected an object"),
    (json.dumps({"owners": [{**GOOD, "samples": None}]}), r"owners\[0\].samples: expected an integer"),
    (json.dumps({"owners": [{**GOOD, "batches": "2"}]}), r"owners\[0\].batches: expected an integer"),
    (json.dumps({"owners": [{**GOOD, "batches": 1.5}]}), r"owners\[0\].batches: expected an integer"),
    (json.dumps({"owners": [{**GOOD, "owner": True}]}), r"owners\[0\].owner: expected an integer"),
    (json.dumps({"owners": [{**GOOD, "owner": "1"}]}), r"owners\[0\].owner: expected an integer"),
    (json.dumps({"owners": [{**GOOD, "owner": 0}]}), r"owners\[0\].owner: expected a client number >= 1"),
    (json.dumps({"owners": [GOOD, {**GOOD, "samples": -1}]}), r"owners\[1\].samples: expected >= 0, got -1"),
    (json.dumps({"owners": [{**GOOD, "loss_sum": -0.5}]}), r"owners\[0\].loss_sum: expected >= 0"),
    (json.dumps({"owners": [{**GOOD, "loss_sum": "x"}]}), r"owners\[0\].loss_sum: expected a number"),
    (json.dumps({"owners": [{k: v for k, v in GOOD.items() if k != "batches"}]}),
     r"owners\[0\]: missing 'batches'"),
    (json.dumps({"owners": [GOOD, GOOD]}), "an owner is listed twice"),
])
def test_a_bad_round_report_is_a_protocol_error_naming_the_field(text, message):
    with pytest.raises(ProtocolError, match=message) as info:
        RoundReport.from_json(text, 2, 7)
    assert "round report of client 2, round 7" in str(info.value)


def test_timeline_rows_are_written_in_todays_csv_format(tmp_path):
    rows = [TimelineRow(2, 1, 3, 0, 0, 5.25, 5.5, "compute", None, 0, 0.1234567),
            TimelineRow(2, 1, 4, 0, 0, 1.0, 2.0000004, "transfer", 3, 4096)]
    assert rows[0].as_csv() == ["2", "1", "3", "0", "0", "5.250000", "5.500000", "compute", "", "0",
                                "0.123457"]
    ResultsWriter.into(tmp_path).write_timeline(2, rows)
    text = (tmp_path / "timeline-client2.csv").read_bytes().decode()
    assert text == ("client,owner,stage,batch,round,start,end,kind,peer,bytes,cpu\r\n"
                    "2,1,3,0,0,5.250000,5.500000,compute,,0,0.123457\r\n"
                    "2,1,4,0,0,1.000000,2.000000,transfer,3,4096,0.000000\r\n")
    merged = merge_timelines(tmp_path).read_text().splitlines()
    assert merged[0].split(",") == list(TIMELINE_COLUMNS)
    assert [line.split(",")[5] for line in merged[1:]] == ["1.000000", "5.250000"]



def test_a_resumed_run_keeps_timeline_rows_written_before_the_cpu_column(tmp_path):
    old = "client,owner,stage,batch,round,start,end,kind,peer,bytes\r\n"
    old += "2,1,3,0,0,5.250000,5.500000,compute,,0\r\n2,1,3,0,1,6.0,6.5,compute,,0\r\n"
    (tmp_path / "timeline-client2.csv").write_text(old, newline="")
    new = [TimelineRow(2, 1, 3, 0, 1, 7.0, 7.5, "compute", None, 0, 0.25)]
    ResultsWriter.into(tmp_path).write_timeline(2, new, kept_through=0)
    lines = (tmp_path / "timeline-client2.csv").read_text().splitlines()
    assert lines[1:] == ["2,1,3,0,0,5.250000,5.500000,compute,,0,",
                         "2,1,3,0,1,7.000000,7.500000,compute,,0,0.250000"]

def _row(round_, seconds, samples=100, sent=10):
    metrics = {"accuracy": 0.91234567, "f1_macro": 0.9, "loss": 0.3333333333}
    return RoundRow.measured(round_, metrics, loss_sum=2.0, batches=3, seconds=seconds,
                             bytes_sent=sent, bytes_received=sent * 2, samples=samples)


def test_round_rows_are_rounded_once_and_written_in_column_order(tmp_path):
    row = _row(0, 1.23456)
    assert (row.round, row.test_accuracy, row.test_loss, row.train_loss, row.round_seconds) == (
        1, 0.912346, 0.333333, 0.666667, 1.235)
    writer = ResultsWriter.into(tmp_path)
    writer.start_metrics()
    writer.add_round(row)
    with (tmp_path / "metrics.csv").open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == list(METRIC_COLUMNS)
    assert written[0] == {"round": "1", "test_accuracy": "0.912346", "f1_macro": "0.9",
                          "test_loss": "0.333333", "train_loss": "0.666667",
                          "round_seconds": "1.235", "bytes_sent": "10", "bytes_received": "20",
                          "samples": "100"}


def test_summary_of_a_trained_run_has_todays_keys_and_values():
    rows = [_row(0, 2.0, samples=100, sent=10), _row(1, 3.0, samples=300, sent=5)]
    summary = run_summary("CNN", "DIGITS", {2: 2048, 1: 1536},
                          trained=Trained("abc", 2, rows, 7.77777, 1234))
    assert list(summary) == [
        "fingerprint", "model", "dataset", "clients", "rounds", "test_accuracy", "f1_macro",
        "test_loss", "train_loss", "total_seconds", "train_seconds", "samples_per_second",
        "bytes_sent", "model_bytes_on_disk", "peak_rss_mib"]
    assert summary["rounds"] == 2 and summary["total_seconds"] == 7.778
    assert summary["train_seconds"] == 5.0 and summary["samples_per_second"] == 80.0
    assert summary["bytes_sent"] == 15 and summary["peak_rss_mib"] == {"1": 1.5, "2": 2.0}
    exchange = Exchange("auto", "direct", [0.12345], {2: 7, 1: 0}, [7])
    full = run_summary("CNN", "DIGITS", {1: 1024}, trained=Trained("abc", 2, rows, 1.0, 9),
                       exchange=exchange)
    assert list(full)[14:] == ["bulk_transport", "activation_transport", "exchange_seconds",
                               "torrent_disk_bytes", "torrent_disk_bytes_by_round",
                               "peak_rss_mib"]
    assert full["exchange_seconds"] == [0.123] and full["torrent_disk_bytes"] == {"1": 0, "2": 7}


def test_summary_of_the_pipelining_benchmark_has_its_keys():
    summary = run_summary("CNN", "DIGITS", {1: 1024, 2: 3072},
                          pipelined=Pipelined(2, 4, 2.00049, 1000, 3, 31, 62))
    assert summary == {"model": "CNN", "dataset": "DIGITS", "processes": 2, "microbatches": 4,
                       "train_seconds": 2.0, "samples": 1000, "samples_per_second": 499.88,
                       "epochs": 3, "batches": 31, "payload_bytes_sent": 62,
                       "peak_rss_mib": {"1": 1.0, "2": 3.0}}


@pytest.mark.parametrize("kwargs", [{}, {"pipelined": Pipelined(1, 1, 1.0, 1, 1, 1, 0),
                                         "trained": Trained("a", 1, [], 1.0, 1)},
                                    {"pipelined": Pipelined(1, 1, 1.0, 1, 1, 1, 0),
                                     "exchange": Exchange("a", "b", [], {}, [])}])
def test_summary_takes_one_kind_of_run(kwargs):
    with pytest.raises(ValueError, match="exactly one of|exchange= goes with"):
        run_summary("CNN", "DIGITS", {}, **kwargs)
