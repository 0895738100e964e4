"""The Flower row end to end: SuperLink, one SuperNode per owner and ``flwr run`` on loopback.

Needs ``.venv-flower`` (``scripts/flower-venv.sh``; CI builds it and sets SPLITNET_REQUIRE_FLOWER=1
so that a missing one fails instead of skipping).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from splitnet.bench.flower import flower_unavailable, run_flower
from splitnet.bench.flower_train import FlowerJob, train_round
from splitnet.bench.options import bench_options
from splitnet.learning.averaging import fedavg

pytestmark = pytest.mark.integration


@pytest.fixture
def venv():
    why = flower_unavailable()
    if why and os.environ.get("SPLITNET_REQUIRE_FLOWER"):
        pytest.fail(f"SPLITNET_REQUIRE_FLOWER is set but {why}")
    if why:
        pytest.skip(why)


def _reference(job: FlowerJob) -> dict[str, torch.Tensor]:
    """One round of FedAvg done here: each owner trains from the seed's model, weighted average."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Flower client
    try:
        states = []
        for owner in job.plan.owners:
            model = job.model()
            samples, _ = train_round(job, model, owner, 0)
            states.append((model.state_dict(), float(samples)))
    finally:
        torch.set_num_threads(threads)
    return fedavg(states)


def test_flower_fedavg_one_round_is_fedavg_of_splitnets_owner_rounds(venv, tmp_path):
    opts = bench_options(tmp_path, clients=2, rounds=1, epochs=1)
    row = run_flower(opts, tmp_path / "flower", timeout=400)
    assert row["note"] == "Flower deployment runtime, insecure mode (no TLS)"
    _check_one_round(row, tmp_path)


def test_under_the_emulated_wan_each_supernode_reaches_the_superlink_across_it(venv, tmp_path):
    wan_module = pytest.importorskip("splitnet.ops.wan", reason="the WAN emulation (h-wan)")
    why = wan_module.wan_unavailable()
    if why:
        pytest.skip(why)
    opts = bench_options(tmp_path, clients=2, rounds=1, epochs=1)
    with wan_module.Wan(wan_module.rtt_links(20.0, 2), range(3)) as wan:
        row = run_flower(opts, tmp_path / "flower", wan, timeout=400)
        addresses = [wan.address(k) for k in (1, 2)]
    assert row["note"].endswith("emulated WAN")
    log = (tmp_path / "flower" / "superlink.log").read_text()
    for address in addresses:  # each SuperNode registered from its own endpoint
        assert re.search(rf'{re.escape(address)}:\d+ - "POST /v1/fleet/register-node', log)
    _check_one_round(row, tmp_path)


def _check_one_round(row, tmp_path):
    job = FlowerJob.load(tmp_path / "flower" / "flower.env")
    assert row["samples"] == sum(len(job.shard(o).train_y) for o in job.plan.owners)
    assert row["seconds"] > 0 and row["samples_per_s"] == pytest.approx(
        row["samples"] / row["seconds"])
    assert 0.0 <= row["test_acc"] <= 1.0
    got = load_file(str(tmp_path / "flower" / "out" / "model.safetensors"))
    expected = _reference(job)
    assert got.keys() == expected.keys()
    initial = job.model().state_dict()
    for key, tensor in expected.items():
        assert not torch.equal(tensor, initial[key])  # the round did train
        torch.testing.assert_close(got[key], tensor, rtol=1e-4, atol=1e-5)
    # every process the row started is gone (SuperLink, SuperNodes, SuperExec, app processes)
    assert not _running_in(tmp_path / "flower"), "processes left behind"


def _running_in(folder: Path) -> list[int]:
    """Return the processes whose working directory is ``folder`` (where the row starts them)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == folder.resolve():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
