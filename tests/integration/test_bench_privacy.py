"""``splitnet bench privacy``'s runs: every mode trains for real and says how it was obtained."""

from __future__ import annotations

import math

import pytest

from splitnet.bench.privacy_cost import MODES, Case, privacy_table, run_privacy_bench

pytestmark = pytest.mark.integration


def test_every_privacy_mode_runs_and_reports_its_protection(tmp_path):
    sigmas_seen: list[float] = []

    def attack(sigma):  # the attacks have their own tests; here: called once per sigma
        sigmas_seen.append(sigma)
        return {"label_leak_auc": 0.5 + sigma, "inversion_mse": sigma}

    rows = run_privacy_bench(tmp_path, [Case("CNN", "DIGITS", rounds=1, epochs=1)], attack,
                             progress=lambda line: None)
    assert [r["mode"] for r in rows] == [m.name for m in MODES]
    assert sigmas_seen == [0.0, 0.5, 1.0]
    by_mode = {r["mode"]: r for r in rows}
    assert by_mode["none"]["vs_none"] == 1.0 and by_mode["none"]["epsilon"] is None
    assert by_mode["secure aggregation"]["secure_aggregation"] is True
    assert by_mode["none"]["secure_aggregation"] is False
    for mode in MODES:
        row = by_mode[mode.name]
        assert row["samples_per_second"] > 0 and 0 <= row["test_accuracy"] <= 1
        if mode.sigma:
            assert math.isfinite(row["epsilon"]) and row["epsilon"] > 0
            assert row["label_leak_auc"] == 0.5 + mode.sigma
    # the noise is the same in both DP sigma=1.0 runs, and secure aggregation changes the
    # average only by its fixed-point rounding
    for plain, secure in (("DP sigma=1.0", "secure aggregation + DP sigma=1.0"),
                          ("none", "secure aggregation")):
        assert abs(by_mode[plain]["test_accuracy"] - by_mode[secure]["test_accuracy"]) <= 0.01
    table = privacy_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| CNN (DIGITS) | none |" in table
