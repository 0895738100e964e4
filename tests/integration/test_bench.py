"""``splitnet bench``: the quick run end to end (a smoke test: it asserts no timings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from splitnet.bench.netns import netns_available
from splitnet.bench.systems import THREADINGS, placements
from splitnet.ops.wan import wan_unavailable
from splitnet.plan.task import Task

SYSTEMS = ["centralized PyTorch", "splitnet all-local", "splitnet offload",
           "splitnet offload, TLS=off", "torch pipelining (gloo, GPipe)"]


def test_offload_placement_moves_each_owners_middle_to_the_next_client():
    lists = placements(3, 4)
    assert lists["all-local"][0] == ["1_1", "1_2", "1_3", "1_4", "1_5", "1_6", "1_7", "1_8"]
    runs = {str(t): k for k, tasks in enumerate(lists["offload"], 1) for t in tasks}
    for owner in (1, 2, 3):
        for stage in (2, 3, 6, 7):  # partitions 2 and 3, forward and backward
            assert runs[str(Task(owner, stage))] == owner % 3 + 1
        for stage in (1, 4, 5, 8):
            assert runs[str(Task(owner, stage))] == owner


def test_quick_bench_compares_the_systems_in_one_run(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, "-m", "splitnet", "bench", "--quick", "--out",
                           str(out), "--rtt", "10", "--depths", "1,4"],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "bench.json").read_text())
    rows = {r["system"]: r for r in report["rows"]}
    assert [label for label, _ in report["centralized_threads"]] == [
        label for label, _, _ in THREADINGS]  # the best of them is the row
    assert rows["centralized PyTorch"]["samples_per_second"] == max(
        sps for _, sps in report["centralized_threads"])
    assert "Centralized PyTorch is the best of 1 thread" in done.stdout
    check_latency_rows(report, rows, done.stdout)
    assert list(rows) == SYSTEMS
    for row in rows.values():
        assert 0.0 <= row["test_accuracy"] <= 1.0 and 0.0 <= row["train_f1"] <= 1.0
        assert row["samples_per_second"] > 0 and row["peak_rss_mib_max"] > 0
        assert row["model_bytes"] > 0 and row["inference_us_per_sample"] > 0
    assert rows["centralized PyTorch"]["vs_centralized"] == 1.0
    # Placement never changes the math: both splitnet runs end with the same model.
    assert rows["splitnet all-local"]["test_accuracy"] == rows["splitnet offload"]["test_accuracy"]
    # TLS never changes the math either; its cost is a ratio against the same run's TLS=off row.
    assert rows["splitnet offload, TLS=off"]["test_accuracy"] == \
        rows["splitnet offload"]["test_accuracy"]
    assert report["tls"]["samples_per_second"] == pytest.approx(
        rows["splitnet offload"]["samples_per_second"]
        / rows["splitnet offload, TLS=off"]["samples_per_second"])
    assert "samples/s with ÷ without" in done.stdout
    assert rows["splitnet offload"]["processes"] == 3
    assert rows["torch pipelining (gloo, GPipe)"]["processes"] == 4
    assert rows["splitnet offload, TLS=off"]["processes"] == 3
    if netns_available():
        assert report["wire_measured"]
        for name in SYSTEMS[1:]:  # headers and control traffic come on top of the payload
            assert rows[name]["wire_bytes"] >= rows[name]["payload_bytes"] > 0
    for name in SYSTEMS:
        assert f"| {name} |" in done.stdout and f"| {name} |" in (out / "bench.md").read_text()


def check_latency_rows(report, rows, stdout):
    """The offload case at RTT 10 ms with k=1 and k=4, torch pipelining, Flower."""
    latency = report["latency"]
    splitnet = [r for r in latency if r["system"] == "splitnet offload"]
    if wan_unavailable():
        assert all(r["note"].startswith("not run:") for r in splitnet)
        return
    assert [(r["rtt_ms"], r["depth"], r["micro"]) for r in splitnet] == [(10, 1, 1), (10, 4, 1)]
    k1, k4 = splitnet
    # Delay never changes the math: k=1 across the WAN ends where the loopback run does.
    assert k1["test_accuracy"] == pytest.approx(rows["splitnet offload"]["test_accuracy"],
                                                abs=1e-6)  # summary.json keeps 6 digits
    assert k1["vs_k1"] == 1.0 and k4["vs_k1"] == k4["samples_per_second"] / k1[
        "samples_per_second"]
    assert k1["samples_per_second"] > 0 and 0 <= k4["test_accuracy"] <= 1
    [pipelining] = [r for r in latency if r["system"].startswith("torch pipelining")]
    assert pipelining["samples_per_second"] > 0 and 0 <= pipelining["test_accuracy"] <= 1
    [flower] = [r for r in latency if r["system"].startswith("Flower")]
    assert flower.get("samples_per_second") or flower["note"].startswith("not run")
    assert "| splitnet offload | 10 | 4 | 1 |" in stdout


@pytest.mark.parametrize("args, message", [
    (["--shaped", "fast"], "--shaped 'fast': expected RATE[,DELAY]"),
    (["--clients", "1"], "--clients 1: expected a whole number of at least 2"),
    (["--rounds", "0"], "--rounds 0: expected a whole number of at least 1"),
    (["--rtt", "-5"], "--rtt '-5': expected milliseconds from 0 to 10000"),
    (["--rtt", "10", "--rate", "fast"], "--rate 'fast': expected a rate such as 100mbit"),
    (["--rtt", "10", "--depths", "0"], "--depths '0': expected positive integers"),
    (["--rtt", "10", "--micro", "3"], "--micro 3: does not divide --batch-size 32"),
    (["--target", "1.5"], "--target 1.5: expected an accuracy in (0, 1]"),
])
def test_bad_bench_options_are_named(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "splitnet", "bench", "--out", str(tmp_path),
                           *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_checkpoint_bench_prints_both_rates_and_their_ratio(tmp_path):
    done = subprocess.run([sys.executable, "-m", "splitnet", "bench", "checkpoints", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [row] = [line for line in done.stdout.splitlines() if line.startswith("| CNN |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:3] == ["CNN", "DIGITS", "1"]
    with_, without, ratio = (float(cell) for cell in cells[3:])
    assert with_ > 0 and without > 0 and ratio == pytest.approx(with_ / without, abs=1e-3)
    # the runs it compares: checkpoints written in one, none in the other
    assert list(tmp_path.glob("cnn-0-keep2/runs/*/checkpoints/client1-round*.json"))
    assert not list(tmp_path.glob("cnn-1-keep0/runs/*/checkpoints/*"))
    assert subprocess.run([sys.executable, "-m", "splitnet", "bench", "checkpoints", "--pairs",
                           "0"], capture_output=True, text=True).returncode == 2
