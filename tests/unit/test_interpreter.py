"""The interpreter, feeder and replicas of several clients in one process, joined by the
in-memory transport (no sockets)."""

import asyncio
import copy
import json
import time

import pytest
import torch
from torch import nn

from splitnet.errors import ProtocolError, RuntimeFailure
from splitnet.learning.batches import epoch_batches, owner_generator
from splitnet.learning.data import load_dataset, owner_data
from splitnet.learning.keys import StateKey
from splitnet.learning.models import build_partitions, compose
from splitnet.learning.optim import make_optimizer
from splitnet.plan.task import Task
from splitnet.runtime import Feeder, Interpreter, Replicas
from splitnet.transport.memory import MemoryHub
from splitnet.transport.messages import TaskMessage

from ..conftest import plan_of, settings_of

ONE_EPOCH = {"TRAINING_NUM_ROUNDS": "1", "TRAINING_NUM_EPOCHS": "1"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: the compute thread and the test's own ops do not spin on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_plan(name=None, **values):
    return plan_of(name, **values)


class _Tensors:
    """A peer handler that only takes tensors: into its client's interpreter."""

    def __init__(self, interpreter):
        self.tensor_calls = 0
        self._interpreter = interpreter

    async def tensor(self, msg):
        self.tensor_calls += 1
        self._interpreter.accept(msg)


class Cluster:
    """Every client's replicas and interpreter; by default results travel over a MemoryHub."""

    def __init__(self, plan, send=None):
        s = plan.training
        self.plan = plan
        self.dataset = load_dataset(s, settings_of("cnn_all_local.env").data)  # the bundled DIGITS
        self.parts = build_partitions(s.model, self.dataset.spec, s.seed)
        self.sent: list[tuple[int, TaskMessage]] = []
        self.failures: list[Exception] = []
        hub = MemoryHub()
        self.networks = {c: hub.network(c) for c in range(1, plan.num_clients + 1)}
        self.clients = {c: Interpreter(plan, c, Replicas(plan, c, self.parts, s.optimizer,
                                                         s.learning_rate), send or self.send)
                        for c in range(1, plan.num_clients + 1)}
        self.handlers = {c: _Tensors(client) for c, client in self.clients.items()}

    def send(self, runner, msg):
        self.sent.append((runner, msg))
        self.networks[msg.sender].tensors.send(runner, msg)

    def data(self, owner):
        return owner_data(self.dataset, self.plan.shard_of(owner), self.plan.training,
                          self.plan.num_shards)

    async def train(self):
        """Run every round; return each round's OwnerStats (raise what an interpreter raised)."""
        for c, network in self.networks.items():
            await network.serve(self.handlers[c], self.failures.append)
        loops = [asyncio.ensure_future(c.run()) for c in self.clients.values()]
        feeders = [Feeder(self.clients[o], o, self.data(o)) for o in self.plan.owners]
        rounds = []
        try:
            for round_ in range(self.plan.training.num_rounds):
                for client in self.clients.values():
                    client.start_round(round_)
                training = asyncio.gather(*(f.train(round_) for f in feeders))
                await asyncio.wait([training, *loops], return_when=asyncio.FIRST_COMPLETED)
                for loop in loops:
                    if loop.done():
                        training.cancel()
                        loop.result()
                rounds.append(training.result())
        finally:
            for loop in loops:
                loop.cancel()
            for client in self.clients.values():
                client.close()
            for network in self.networks.values():
                await network.aclose()
        assert not self.failures, self.failures
        return rounds


def plain_training(cluster, owner):
    """Plain SGD on the owner's composed model, in the feeder's batch order."""
    s = cluster.plan.training
    model = compose(copy.deepcopy(cluster.parts)).train()
    optimizer = make_optimizer(s.optimizer, model.parameters(), s.learning_rate)
    data = cluster.data(owner)
    losses = []
    for round_ in range(s.num_rounds):
        generator = owner_generator(s.seed, owner, round_)
        for _ in range(s.num_epochs):
            for index in epoch_batches(len(data.train_y), s.batch_size, generator):
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(data.train_x[index]), data.train_y[index])
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
    state = {}
    for key, value in model.state_dict().items():
        index, name = key.split(".", 1)
        state[str(StateKey(owner, int(index) + 1, name))] = value
    return state, losses


@pytest.mark.parametrize("name, values", [
    ("owner_and_helper.env", {**ONE_EPOCH, "LEARNING_RATE": "0.01"}),
    ("cnn_all_local.env", ONE_EPOCH),
    ("cnn_cross_offload.env", {**ONE_EPOCH, "TRAINING_NUM_ROUNDS": "2"}),
])
def test_split_training_equals_plain_sgd_on_each_owners_model(name, values):
    cluster = Cluster(make_plan(name, **values))
    rounds = asyncio.run(cluster.train())
    split = {k: v for c in cluster.clients.values() for k, v in c.replicas.states().items()}
    for owner in cluster.plan.owners:
        plain, losses = plain_training(cluster, owner)
        mine = {k: v for k, v in split.items() if StateKey.parse(k).owner == owner}
        assert mine.keys() == plain.keys()
        for key, value in plain.items():
            torch.testing.assert_close(mine[key], value, atol=1e-5, rtol=0)
        stats = [next(s for s in r if s.owner == owner) for r in rounds]
        assert sum(s.batches for s in stats) == len(losses)
        assert sum(s.samples for s in stats) == len(cluster.data(owner).train_y) * len(rounds)
        assert sum(s.loss_sum for s in stats) == pytest.approx(sum(losses), abs=1e-4)
    hops = {(runner, str(Task(m.owner, m.stage))) for runner, m in cluster.sent}
    offloads = cluster.plan.offloads()
    assert bool(hops) == bool(offloads)  # an all-local plan sends nothing
    assert sum(h.tensor_calls for h in cluster.handlers.values()) == len(cluster.sent)


def activations(cluster, partitions, n=4):
    """Return owner 1's first ``n`` samples after ``partitions`` partitions (what the plan sends)."""
    x = cluster.dataset.train_x[:n]
    with torch.no_grad():
        for part in cluster.parts[:partitions]:
            x = part(x)
    return x


def test_a_failing_step_names_the_step_and_marks_it_in_the_order(monkeypatch):
    cluster = Cluster(make_plan("owner_and_helper.env"))
    helper = cluster.clients[2]
    helper.start_round(0)
    segment = helper.replicas.segment_for(1, 2)

    def fail(batch, x):
        raise RuntimeError("broken partition")

    monkeypatch.setattr(segment, "forward", fail)
    helper.accept(TaskMessage(1, 2, 0, 0, 1, activations(cluster, 1)))

    async def run():
        with pytest.raises(RuntimeFailure) as info:
            await asyncio.wait_for(helper.run(), 5)
        return str(info.value)

    text = asyncio.run(run())
    helper.close()
    assert "client 2: task 1_2 (batch 0, round 0) failed: RuntimeError" in text
    assert "client 2's order: >1_2< 1_3 1_6 1_7" in text


@pytest.mark.parametrize("client, msg, message", [
    (1, TaskMessage(9, 4, 0, 0, 2, torch.zeros(2)), "task 9_4 is not in the plan"),
    (1, TaskMessage(1, 9, 0, 0, 2, torch.zeros(2)), "task 1_9 is not in the plan"),
    (1, TaskMessage(1, 2, 0, 0, 2, torch.zeros(2)), "runs on client 2, not on client 1"),
    (1, TaskMessage(1, 1, 0, 0, 2, torch.zeros(2)), "takes its input from its owner only"),
    (1, TaskMessage(1, 5, 0, 0, 2, torch.zeros(2)), "takes its input from its owner only"),
    (2, TaskMessage(1, 3, 0, 0, 1, torch.zeros(2)),
     "inside client 2's segment of owner 1's partitions 2-3"),
    (2, TaskMessage(1, 7, 0, 0, 1, torch.zeros(2)), "inside client 2's segment"),
    (2, TaskMessage(1, 2, 0, 5, 1, torch.zeros(2)), "round 5 while client 2 is in round 0"),
    (2, TaskMessage(1, 2, 0, 0, 1, None), "arrived without a tensor"),
    (2, TaskMessage(1, 2, 0, 0, 1, torch.zeros(2, dtype=torch.int32)), "floating-point"),
    (2, TaskMessage(1, 2, 0, 0, 1, torch.zeros(2)),
     r"tensor of shape \(2,\) torch.float32, expected \(1..32, 32, 4, 4\) torch.float32"),
])
def test_accept_refuses_what_does_not_fit_the_plan(client, msg, message):
    cluster = Cluster(make_plan("owner_and_helper.env"))
    interpreter = cluster.clients[client]
    interpreter.start_round(0)
    with pytest.raises(ProtocolError, match=message):
        interpreter.accept(msg)
    stage, partitions = (4, 3) if client == 1 else (2, 1)
    interpreter.accept(TaskMessage(1, stage, 0, 0, 3 - client, activations(cluster, partitions)))
    interpreter.close()


def test_accept_refuses_a_batch_twice_and_takes_the_next_round_early():
    cluster = Cluster(make_plan("owner_and_helper.env"))
    helper = cluster.clients[2]
    helper.start_round(0)
    x = activations(cluster, 1)
    helper.accept(TaskMessage(1, 2, 0, 0, 1, x))
    with pytest.raises(ProtocolError, match="task 1_2 batch 0 arrived twice"):
        helper.accept(TaskMessage(1, 2, 0, 0, 1, x))
    helper.accept(TaskMessage(1, 2, 0, 1, 1, x))  # round r+1 waits in the inbox
    helper.close()


# Owner 1's partition 2 runs on client 2 and owner 2's on client 1.
CROSSED = [["1_1", "1_3", "1_4", "1_5", "1_6", "1_8", "2_2", "2_7"],
           ["1_2", "1_7", "2_1", "2_3", "2_4", "2_5", "2_6", "2_8"]]


@pytest.mark.parametrize("first", ["1_1", "2_2"])
def test_ready_tasks_run_in_the_order_of_the_clients_list(first):
    lists = copy.deepcopy(CROSSED)
    lists[0].remove(first)
    lists[0].insert(0, first)
    plan = make_plan(NUM_CLIENTS="2", CURRENT_MODEL="CNN", CURRENT_DATASET="DIGITS",
                     SIMULATION_STAGES_CLIENTS=json.dumps(lists))
    sent = []
    cluster = Cluster(plan, lambda runner, msg: sent.append((runner, str(Task(msg.owner,
                                                                              msg.stage)))))
    client = cluster.clients[1]
    x, y = cluster.dataset.train_x[:4], cluster.dataset.train_y[:4]
    activation = cluster.parts[0](x).detach()

    async def run():
        done = client.feed(1, 0, 0, x, y)  # queued first, but the list decides
        client.accept(TaskMessage(2, 2, 0, 0, 2, activation))
        client.start_round(0)
        loop = asyncio.ensure_future(client.run())
        deadline = time.monotonic() + 30  # a busy machine: wait for the event, not a fixed time
        while len(sent) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        loop.cancel()
        done.cancel()

    asyncio.run(run())
    client.close()
    ran = [str(Task(row.owner, row.stage)) for row in client.timeline]
    expected = ["1_1", "2_2"] if first == "1_1" else ["2_2", "1_1"]
    assert ran == expected
    assert all(0 < row.cpu <= row.end - row.start + 1e-3 for row in client.timeline)
    hand_ons = {"1_1": (2, "1_2"), "2_2": (2, "2_3")}
    assert sent == [hand_ons[t] for t in expected]
