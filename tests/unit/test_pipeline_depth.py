"""PIPELINE_DEPTH and MICRO_BATCHES: the cluster's weights against single-process references.

The reference below is written for the tests, apart from the runtime: weight-stashed pipelining
with vertical sync is sequential once written down — batch ``b`` runs forward and backward on
each segment's weights as they were after batch ``b - k`` was applied (the owner's loss segment
on its latest weights), and the gradients are applied in batch order — so one loop over the
batches gives what the concurrent cluster must.
"""

import asyncio
import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from splitnet.errors import ConfigError, ProtocolError
from splitnet.learning.batches import epoch_batches, owner_generator
from splitnet.learning.keys import StateKey
from splitnet.learning.optim import make_optimizer
from splitnet.plan.segments import runs_of
from splitnet.plan.units import micro_slices, unit_ids
from splitnet.transport.messages import TaskMessage

from ..conftest import plan_of, settings_of
from .test_interpreter import Cluster, activations, one_torch_thread  # noqa: F401 (autouse)

OFFLOAD = "cnn_cross_offload.env"  # owners offload middle partitions to each other


def run_cluster(depth, micro=1, rounds=1, **values):
    plan = plan_of(OFFLOAD, TRAINING_NUM_ROUNDS=str(rounds), TRAINING_NUM_EPOCHS="1",
                   PIPELINE_DEPTH=str(depth), MICRO_BATCHES=str(micro), **values)
    cluster = Cluster(plan)
    stats = asyncio.run(cluster.train())
    states = {k: v for c in cluster.clients.values() for k, v in c.replicas.states().items()}
    return cluster, states, stats


def reference(cluster, owner, depth):
    """Weight-stashed pipelining of ``owner``'s batches, one batch after another."""
    plan, s = cluster.plan, cluster.plan.training
    runs = sorted((r for c in range(1, plan.num_clients + 1) for r in runs_of(plan, c)
                   if r.owner == owner), key=lambda r: r.first)
    mods = [nn.Sequential(*[copy.deepcopy(cluster.parts[p - 1]) for p in r.partitions]).train()
            for r in runs]
    opts = [make_optimizer(s.optimizer, m.parameters(), s.learning_rate) for m in mods]
    names = [[n for n, _ in m.named_parameters()] for m in mods]
    applied = [{-(10**9): [p.detach().clone() for p in m.parameters()]} for m in mods]
    data = cluster.data(owner)
    batch, losses = 0, []
    for round_ in range(s.num_rounds):
        generator = owner_generator(s.seed, owner, round_)
        for _ in range(s.num_epochs):
            for index in epoch_batches(len(data.train_y), s.batch_size, generator):
                x, graphs = data.train_x[index], []
                for i, mod in enumerate(mods):  # forward on the version after batch - depth
                    x = x.detach().contiguous().requires_grad_(i > 0)  # as the wire gives it
                    if depth == 1 or i == len(mods) - 1:  # the loss segment: latest weights
                        weights, out = None, mod(x)
                    else:
                        old = max(b for b in applied[i] if b <= batch - depth)
                        weights = [w.clone().requires_grad_(True) for w in applied[i][old]]
                        out = functional_call(mod, dict(zip(names[i], weights, strict=True)), (x,))
                    graphs.append((x, out, weights))
                    x = out
                grad = None
                for i in reversed(range(len(mods))):  # backward, each segment stepping first
                    x, out, weights = graphs[i]
                    if grad is None:
                        loss = nn.functional.cross_entropy(out, data.train_y[index])
                        losses.append(float(loss.detach()))
                        out, grad_out = loss, None
                    else:
                        grad_out = grad.contiguous()
                    if weights is None:
                        opts[i].zero_grad(set_to_none=True)
                        out.backward(grad_out)
                        grad = x.grad
                    else:
                        grads = torch.autograd.grad(out, [*weights, x] if i else weights,
                                                    grad_out)
                        for param, g in zip(mods[i].parameters(), grads, strict=False):
                            param.grad = g
                        grad = grads[-1] if i else None
                    opts[i].step()
                    opts[i].zero_grad(set_to_none=True)
                    applied[i][batch] = [p.detach().clone() for p in mods[i].parameters()]
                batch += 1
    state = {}
    for run, mod in zip(runs, mods, strict=True):
        for key, value in mod.state_dict().items():
            index, name = key.split(".", 1)
            state[str(StateKey(owner, run.first + int(index), name))] = value
    return state, losses


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_the_cluster_equals_the_weight_stashing_reference_bit_for_bit(depth):
    cluster, states, rounds = run_cluster(depth)
    for owner in cluster.plan.owners:
        expected, losses = reference(cluster, owner, depth)
        mine = {k: v for k, v in states.items() if StateKey.parse(k).owner == owner}
        assert mine.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(mine[key], value), (depth, key)
        stats = next(s for s in rounds[0] if s.owner == owner)
        assert stats.batches == len(losses)
        assert stats.loss_sum == pytest.approx(sum(losses), abs=1e-9)


def test_depth_one_is_todays_exact_sgd_and_deeper_pipelines_differ():
    _, exact, _ = run_cluster(1)
    _, deep, _ = run_cluster(4)
    assert exact.keys() == deep.keys()
    assert any(not torch.equal(exact[k], deep[k]) for k in exact)  # stale gradients: not SGD


def test_stashed_versions_carry_across_rounds():
    cluster, states, _ = run_cluster(3, rounds=2)
    for owner in cluster.plan.owners:
        expected, _ = reference(cluster, owner, 3)
        for key, value in expected.items():
            assert torch.equal(states[key], value), key


@pytest.mark.parametrize("micro", [2, 4, 32])
def test_micro_batches_equal_the_full_batch_step(micro):
    _, full, _ = run_cluster(1)
    cluster, split, rounds = run_cluster(1, micro)
    for key, value in full.items():
        torch.testing.assert_close(split[key], value, atol=1e-5, rtol=0)
    sent = {m.batch for _, m in cluster.sent}
    assert max(sent) >= micro  # units travelled, several per batch
    assert all(s.batches > 0 for s in rounds[0])


def test_micro_batches_with_a_deep_pipeline_stay_close_to_its_full_batch_run():
    _, full, _ = run_cluster(2)
    _, split, _ = run_cluster(2, 4)
    for key, value in full.items():
        torch.testing.assert_close(split[key], value, atol=1e-5, rtol=0)


def test_units_cover_a_batch_and_end_on_the_last_number():
    assert micro_slices(32, 4) == [slice(0, 8), slice(8, 16), slice(16, 24), slice(24, 32)]
    assert micro_slices(3, 4) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert micro_slices(10, 4) == [slice(0, 3), slice(3, 6), slice(6, 8), slice(8, 10)]
    assert unit_ids(5, 3, 4) == [20, 21, 23]
    assert unit_ids(5, 1, 1) == [5]


@pytest.mark.parametrize("values, message", [
    ({"PIPELINE_DEPTH": "0"}, "PIPELINE_DEPTH='0': expected an integer from 1 to 64"),
    ({"MICRO_BATCHES": "0"}, "MICRO_BATCHES='0': expected an integer from 1"),
    ({"MICRO_BATCHES": "3"}, "MICRO_BATCHES=3 does not divide BATCH_SIZE=32"),
    ({"PIPELINE_DEPTH": "2", "ACTIVATION_TRANSPORT": "torrent"},
     "ACTIVATION_TRANSPORT=torrent with PIPELINE_DEPTH=2"),
])
def test_bad_values_are_named_errors(values, message):
    with pytest.raises(ConfigError) as info:
        settings_of(OFFLOAD, **values)
    assert message in str(info.value)


def test_validate_says_what_depth_and_micro_batches_do_and_fingerprints_stay_at_one():
    base = plan_of(OFFLOAD)
    assert plan_of(OFFLOAD, PIPELINE_DEPTH="1", MICRO_BATCHES="1").fingerprint == base.fingerprint
    deep = plan_of(OFFLOAD, PIPELINE_DEPTH="4", MICRO_BATCHES="2")
    assert deep.fingerprint != base.fingerprint
    assert "Pipeline depth 4" in deep.summary() and "up to 3 step(s) stale" in deep.summary()
    assert "not exact SGD" in deep.summary() and "2 micro-batches" in deep.summary()
    assert "Pipeline depth" not in base.summary()


@pytest.mark.parametrize("depth, micro, taken, refused", [
    (1, 1, [0], 1),  # today's rule: nothing ran here yet, so batch 0 only
    (2, 1, [0, 1], 2),
    (4, 1, [0, 1, 2, 3], 4),
    (2, 4, [0, 1, 3, 4, 7], 8),  # units of batches 0 and 1; unit 8 is batch 2
])
def test_a_forward_further_ahead_than_the_window_is_refused(depth, micro, taken, refused):
    plan = plan_of("owner_and_helper.env", PIPELINE_DEPTH=str(depth), MICRO_BATCHES=str(micro))
    cluster = Cluster(plan)
    helper = cluster.clients[2]
    helper.start_round(0)
    x = activations(cluster, 1)
    for unit in taken:
        helper.accept(TaskMessage(1, 2, unit, 0, 1, x))
    with pytest.raises(ProtocolError, match=f"batch {refused} is not owner 1's batch in flight"):
        helper.accept(TaskMessage(1, 2, refused, 0, 1, x))
    helper.close()
