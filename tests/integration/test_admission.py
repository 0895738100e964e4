"""Admission on real listeners (issue 12, findings 1 and 2): refused input leaves the run intact."""

import asyncio

import pytest
import torch

from splitnet.errors import ProtocolError, RuntimeFailure
from splitnet.learning.sizes import wire_limits
from splitnet.transport.client import PeerClient
from splitnet.transport.messages import TaskMessage

from .cluster import TOKEN, make_nodes, make_plan, run_cluster
from .test_runtime import example

pytestmark = pytest.mark.integration

VALUES = {"TRAINING_NUM_ROUNDS": "2", "TRAINING_NUM_EPOCHS": "1"}


def test_refused_tensors_leave_the_helper_running_and_the_result_unchanged(tmp_path):
    """A token-holding peer sends the helper a wrong shape, a wrong dtype, a batch and a round
    that cannot be in flight: each is refused naming the rule; the run ends as an undisturbed one.
    """
    values = example("owner_and_helper.env", **VALUES)
    undisturbed = run_cluster(values, tmp_path / "undisturbed")
    assert not [r for r in undisturbed if isinstance(r, BaseException)], undisturbed
    activation = (1, 32, 4, 4)  # partition 1's output for DIGITS
    too_many = torch.zeros(64, *activation[1:])  # twice BATCH_SIZE: over the plan's largest
    cases = [
        (torch.zeros(3, 5), r"task 1_2 batch 0: tensor of shape \(3, 5\) torch.float32, "
                            r"expected \(1..32, 32, 4, 4\) torch.float32"),
        (torch.zeros(*activation, dtype=torch.float64), "torch.float64, expected"),
        (too_many, f"tensor of {too_many.nbytes} bytes exceeds the limit of "  # plan's limit
                   f"{wire_limits(make_plan(values, 2)).tensor_bytes}"),
    ]

    async def main():
        torch.set_num_threads(1)
        owner, helper = make_nodes(values, tmp_path / "disturbed")
        helping = asyncio.ensure_future(helper.run())  # serves while it waits for the owner
        peer = PeerClient(2, helper.network.options.addresses[1], TOKEN, 1, 10.0)
        for _ in range(200):
            try:
                await peer.ping(timeout=1.0)
                break
            except RuntimeFailure:  # not listening yet
                await asyncio.sleep(0.05)
        for tensor, message in cases:
            with pytest.raises(ProtocolError, match=message):
                await peer.send_tensor(TaskMessage(1, 2, 0, 0, 1, tensor))
        with pytest.raises(ProtocolError, match="message for round 1 while client 2 is in round"):
            await peer.send_tensor(TaskMessage(1, 2, 0, 1, 1, torch.zeros(*activation)))
        with pytest.raises(ProtocolError, match="batch 5 is not owner 1's batch in flight"):
            await peer.send_tensor(TaskMessage(1, 2, 5, 0, 1, torch.zeros(*activation)))
        with pytest.raises(ProtocolError, match="task 1_6 batch 0: message for round 0 while"):
            await peer.send_tensor(TaskMessage(1, 6, 0, 0, 1, torch.zeros(1, 128)))
        await peer.aclose()
        errors = {kind: helper.metrics.registry.get_sample_value(
            "splitnet_errors_total", {"client": "2", "kind": kind}) for kind in ("rejected", "limit")}
        assert errors == {"rejected": len(cases) - 1 + 3, "limit": 1}  # the oversize one: limit
        return await asyncio.gather(owner.run(), helping, return_exceptions=True)

    disturbed = asyncio.run(main())
    assert not [r for r in disturbed if isinstance(r, BaseException)], disturbed
    assert disturbed[0]["test_accuracy"] == undisturbed[0]["test_accuracy"]
    assert disturbed[0]["rounds"] == 2
