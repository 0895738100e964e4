import pytest

from splitnet.telemetry.report import write_report
from splitnet.telemetry.results import merge_timelines

from .cluster import run_cluster
from .test_runtime import example

pytestmark = pytest.mark.integration
PNG = b"\x89PNG\r\n\x1a\n"


def test_report_writes_labelled_figures_and_a_summary(tmp_path):
    values = example("owner_and_helper.env", TRAINING_NUM_ROUNDS="2")
    outcome = run_cluster(values, tmp_path)
    assert not [r for r in outcome if isinstance(r, BaseException)], outcome
    merge_timelines(tmp_path / "latest")
    report = write_report(tmp_path)  # RESULTS_DIR: its latest run
    assert report == tmp_path / "runs" / (tmp_path / "latest").readlink().name / "report" / (
        "report.md")
    for name in ("metrics.png", "timeline.png", "compute_transfer.png", "links.png"):
        data = (tmp_path / "latest" / "report" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    text = report.read_text()
    assert "final test accuracy" in text and "1->2" in text and "client 2:" in text
