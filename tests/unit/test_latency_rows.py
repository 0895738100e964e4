"""The latency rows' arithmetic: time to a target accuracy, where Flower runs, the table."""

from splitnet.bench.latency import _flower_rtts, latency_table, time_to_target


def test_time_to_target_sums_round_seconds_until_the_accuracy_is_first_reached(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("round,test_accuracy,round_seconds\n1,0.5,2.0\n2,0.96,3.0\n3,0.94,1.0\n"
                    "4,0.97,1.0\n")
    assert time_to_target(path, 0.95) == 5.0
    assert time_to_target(path, 0.5) == 2.0
    assert time_to_target(path, 0.99) is None
    assert time_to_target(tmp_path / "missing.csv", 0.5) is None


def test_flower_runs_at_rtt_0_and_at_the_wan_rtt_nearest_20_ms():
    assert _flower_rtts((0, 5, 20, 50)) == {0, 20}
    assert _flower_rtts((5, 50)) == {5}
    assert _flower_rtts((0,)) == {0}
    assert _flower_rtts((30, 12)) == {30} or _flower_rtts((30, 12)) == {12}


def test_the_table_shows_missing_values_as_dashes_and_notes():
    rows = [{"system": "splitnet offload", "rtt_ms": 20.0, "depth": 8, "micro": 1,
             "test_accuracy": 0.96, "samples_per_second": 4000.0, "vs_centralized": 0.5,
             "vs_k1": 4.1, "time_to_target": 12.5},
            {"system": "Flower FedAvg (all-local)", "rtt_ms": 0.0, "note": "not run: no venv"}]
    text = latency_table(rows, 0.95)
    assert "| splitnet offload | 20 | 8 | 1 | 0.9600 | 4000 | 0.50x | 4.10x | 12.5 |  |" in text
    assert "| Flower FedAvg (all-local) | 0 | — | — | — | — | — | — | — | not run: no venv |" \
        in text
    assert "s to 0.95 acc" in text
