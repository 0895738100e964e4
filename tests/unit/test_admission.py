"""Admission (issue 12, findings 1 and 2): no peer input can hold up another or break a step."""

import asyncio
import re

import pytest
import torch

from splitnet.errors import ProtocolError
from splitnet.transport.messages import TaskMessage

from .test_interpreter import ONE_EPOCH, Cluster, activations, make_plan

TWO_ROUNDS = {**ONE_EPOCH, "TRAINING_NUM_ROUNDS": "2"}


def _states(cluster):
    return {k: v for c in cluster.clients.values() for k, v in c.replicas.states().items()}


def test_a_message_for_the_next_round_does_not_hold_up_this_round():
    """A round r+1 input queued before the round-r input: the run ends as an undisturbed one."""
    undisturbed = Cluster(make_plan("owner_and_helper.env", **TWO_ROUNDS))
    expected = asyncio.run(undisturbed.train())
    cluster = Cluster(make_plan("owner_and_helper.env", **TWO_ROUNDS))
    helper = cluster.clients[2]
    injected = []

    def send(runner, msg):
        if runner == 2 and msg.stage == 2 and len(injected) < 3:
            early = TaskMessage(1, 2, msg.batch, msg.round + 1, 1, torch.zeros_like(msg.tensor))
            helper.accept(early)  # queued ahead of the real input of this round
            injected.append(early)
        cluster.send(runner, msg)

    for interpreter in cluster.clients.values():
        interpreter._send = send

    async def train():
        return await asyncio.wait_for(cluster.train(), 300)  # without the fix: hangs forever

    rounds = asyncio.run(train())
    assert len(injected) == 3
    assert rounds == expected
    states, reference = _states(cluster), _states(undisturbed)
    assert states.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(states[key], value), key


@pytest.mark.parametrize("msg, message", [
    (TaskMessage(1, 2, 0, 2, 1, None), "message for round 2 while client 2 is in round 0"),
    (TaskMessage(1, 2, 1, 0, 1, None), "batch 1 is not owner 1's batch in flight"),
    (TaskMessage(1, 2, 0, 0, 3, None), "takes its input from client 1 .partition 1., not from "
                                       "client 3"),
    (TaskMessage(1, 6, 0, 0, 1, None), "no forward of that batch waits for its gradient"),
    (TaskMessage(1, 6, 0, 1, 1, None), "message for round 1 while client 2 is in round 0"),
])
def test_accept_refuses_what_cannot_come_from_the_plan(msg, message):
    cluster = Cluster(make_plan("owner_and_helper.env"))
    helper = cluster.clients[2]
    helper.start_round(0)
    msg.tensor = activations(cluster, 1)
    with pytest.raises(ProtocolError, match=message):
        helper.accept(msg)
    helper.close()


async def _run_until(helper, sent, count):
    """Run the helper's loop until it has sent ``count`` messages."""
    loop = asyncio.ensure_future(helper.run())
    for _ in range(5000):
        if len(sent) >= count or loop.done():
            break
        await asyncio.sleep(0.002)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


def test_a_wrong_shape_is_refused_and_the_client_goes_on():
    """Forward and backward input of the wrong shape or dtype is refused; the right one runs."""
    sent = []
    cluster = Cluster(make_plan("owner_and_helper.env"), lambda runner, msg: sent.append(msg))
    helper = cluster.clients[2]
    helper.start_round(0)
    x = activations(cluster, 1)

    async def run():
        for wrong, shape in [(x[:, :3], r"\(4, 3, 4, 4\) torch.float32"),
                             (torch.zeros(33, *x.shape[1:]), r"\(33, 32, 4, 4\) torch.float32"),
                             (x.double(), r"\(4, 32, 4, 4\) torch.float64")]:
            with pytest.raises(ProtocolError, match=rf"^task 1_2 batch 0: tensor of shape {shape}, "
                                                    r"expected \(1..32, 32, 4, 4\) torch.float32$"):
                helper.accept(TaskMessage(1, 2, 0, 0, 1, wrong))
        helper.accept(TaskMessage(1, 2, 0, 0, 1, x))
        await _run_until(helper, sent, 1)
        assert [(m.owner, m.stage, m.batch) for m in sent] == [(1, 4, 0)]
        out = sent[0].tensor
        refusal = (f"task 1_6 batch 0: tensor of shape (4, 7) torch.float32, expected "
                   f"{tuple(out.shape)} torch.float32")
        with pytest.raises(ProtocolError, match=f"^{re.escape(refusal)}$"):
            helper.accept(TaskMessage(1, 6, 0, 0, 1, torch.zeros(4, 7)))
        with pytest.raises(ProtocolError, match="task 1_6 batch 0: tensor of shape"):
            helper.accept(TaskMessage(1, 6, 0, 0, 1, torch.zeros(3, *out.shape[1:])))
        helper.accept(TaskMessage(1, 6, 0, 0, 1, torch.ones_like(out)))
        await _run_until(helper, sent, 2)

    asyncio.run(run())
    helper.close()
    assert [(m.owner, m.stage, m.batch) for m in sent] == [(1, 4, 0), (1, 8, 0)]
    assert sent[1].tensor.shape == x.shape
    with pytest.raises(ProtocolError, match="task 1_2 batch 0 already ran here"):
        helper.accept(TaskMessage(1, 2, 0, 0, 1, x))
    helper.accept(TaskMessage(1, 2, 1, 0, 1, x))  # the owner's next batch
