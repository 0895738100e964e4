"""The Flower row trains what splitnet's all-local case trains: same shards, same batch order.

No flwr needed: the Flower client calls :mod:`splitnet.bench.flower_train`, checked here against
splitnet's own owner feeder (the runtime's) and the baseline's union of shards.
"""

from __future__ import annotations

import asyncio

import pytest
import torch

from splitnet.bench.flower import flower_unavailable, run_flower
from splitnet.bench.flower_train import FlowerJob, all_local_lines, owner_batches, train_round
from splitnet.bench.options import bench_options
from splitnet.bench.systems import placements
from splitnet.ops.baseline import train_union
from splitnet.runtime.feeder import Feeder
from splitnet.telemetry.metrics import Metrics


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flower")
    opts = bench_options(folder, clients=3, rounds=2, epochs=2, batch_size=16, seed=7)
    env = folder / "flower.env"
    env.write_text("\n".join(all_local_lines(opts)) + "\n")
    return FlowerJob.load(env)


class _Recorder:
    """An interpreter that records what the feeder feeds and answers every batch at once."""

    def __init__(self, plan):
        self.plan, self.metrics = plan, Metrics(1)
        self.fed: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []

    def feed(self, owner, batch, round_, x, y):
        self.fed.append((owner, round_, x, y))
        done = asyncio.get_running_loop().create_future()
        done.set_result(0.0)
        return done


def _feeder_batches(job, owner, round_):
    """What splitnet's runtime feeds for ``owner`` in ``round_`` (node wiring's shard)."""
    recorder = _Recorder(job.plan)
    data = job.shard(owner)  # checked against the baseline's union below
    asyncio.run(Feeder(recorder, owner, data).train(round_))  # type: ignore[arg-type]
    assert {(o, r) for o, r, _, _ in recorder.fed} == {(owner, round_)}
    return [(x, y) for _, _, x, y in recorder.fed]


def test_the_settings_are_the_bench_all_local_case(job):
    assert job.plan.owners == (1, 2, 3)
    lists = job.plan.training.stages_clients
    assert [list(tasks) for tasks in lists] == placements(3, 4)["all-local"]
    t = job.plan.training
    assert (t.num_rounds, t.num_epochs, t.batch_size, t.seed) == (2, 2, 16, 7)


def test_the_owners_shards_are_the_samples_splitnet_trains_on(job):
    x, y = train_union(job.plan, job.dataset)
    shards = [job.shard(o) for o in job.plan.owners]
    assert torch.equal(torch.cat([s.train_x for s in shards]), x)
    assert torch.equal(torch.cat([s.train_y for s in shards]), y)
    assert len({len(s.train_y) for s in shards}) <= 2  # iid: sizes differ by at most one
    with pytest.raises(ValueError, match="owner 4"):
        job.shard(4)


@pytest.mark.parametrize(("owner", "round_"), [(1, 0), (2, 1), (3, 1)])
def test_each_flower_client_trains_the_feeders_batches_in_the_feeders_order(job, owner, round_):
    expected = _feeder_batches(job, owner, round_)
    got = list(owner_batches(job, owner, round_))
    assert len(got) == len(expected) == 2 * -(-len(job.shard(owner).train_y) // 16)
    for (gx, gy), (ex, ey) in zip(got, expected, strict=True):
        assert torch.equal(gx, ex) and torch.equal(gy, ey)
    # another round or another owner is another order (the check above could fail)
    other = list(owner_batches(job, owner, round_ + 1))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(got, other, strict=False))


def test_a_round_is_plain_sgd_on_the_batches_and_reports_the_samples(job):
    model, again = job.model(), job.model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    samples, loss = train_round(job, model, 2, 0)
    assert samples == 2 * len(job.shard(2).train_y)
    assert 0 < loss < 5
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    train_round(job, again, 2, 0)  # deterministic: the same seed gives the same weights
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


def test_without_the_flower_venv_the_row_is_not_run(tmp_path, monkeypatch):
    import splitnet.bench.flower as flower

    monkeypatch.setattr(flower, "VENV", tmp_path / "nowhere")
    assert "scripts/flower-venv.sh" in (flower_unavailable() or "")
    row = run_flower(bench_options(tmp_path, quick=True), tmp_path)
    assert row["note"].startswith("not run: ") and row["samples_per_s"] is None
