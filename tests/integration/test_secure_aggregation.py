"""Secure aggregation in a whole run (real gRPC on loopback): FedAvg's model, no replica seen.

The cross-offload CNN job (5 clients, each partition's replicas on several clients) trains with
SECURE_AGGREGATION=on and off, over either bulk transport (masked payloads are safetensors too);
the models agree within the fixed-point error. What reaches the
aggregator is recorded on the way in: only masked ``partition/name`` sums, never an
``owner/partition/name`` replica, and each looks uniform.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors

from splitnet.errors import ConfigError
from splitnet.learning.keys import StateKey
from splitnet.node.aggregator import Aggregator

from .cluster import make_plan, run_cluster
from .test_runtime import example, final_model

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("bulk", ["grpc", "torrent"])
def test_a_run_with_secure_aggregation_ends_with_plain_fedavgs_model(tmp_path, monkeypatch, bulk):
    values = example("cnn_cross_offload.env", TRAINING_NUM_ROUNDS="2", TRAINING_NUM_EPOCHS="1",
                     BULK_TRANSPORT=bulk)
    outcome = run_cluster(values, tmp_path / "plain")
    assert not [r for r in outcome if isinstance(r, BaseException)], outcome
    seen: list[dict[str, torch.Tensor]] = []
    average = Aggregator._aggregate

    async def recording(self, round_):  # what the aggregator's pulls bring in
        pull = type(self._routing).pull

        async def pulled(peer, r, weights=None):
            blob = await pull(self._routing, peer, r, weights)
            seen.append(load_safetensors(blob.data))
            return blob

        self._routing.pull = pulled
        return await average(self, round_)

    monkeypatch.setattr(Aggregator, "_aggregate", recording)
    outcome = run_cluster({**values, "SECURE_AGGREGATION": "on"}, tmp_path / "secure")
    assert not [r for r in outcome if isinstance(r, BaseException)], outcome
    assert outcome[0]["secure_aggregation"] is True
    plain, secure = final_model(tmp_path / "plain"), final_model(tmp_path / "secure")
    assert plain.keys() == secure.keys()
    for key, value in plain.items():
        if value.is_floating_point() and value.norm() > 0:
            assert float((secure[key] - value).norm() / value.norm()) <= 1e-5, key
        else:
            assert torch.equal(secure[key], value), key
    assert len(seen) == outcome[0]["rounds"] * 4  # 4 peers a round (the aggregator's own
    # payload stays in place)
    for payload in seen:
        for name, tensor in payload.items():
            assert StateKey.parse(name).owner is None, name  # a sum, never one owner's
            assert tensor.dtype == torch.int64
        big = max(payload.values(), key=lambda t: t.numel()).numpy().view(np.uint8)
        assert abs(np.unpackbits(big).mean() - 0.5) < 0.01


def test_secure_aggregation_with_a_single_owner_is_a_named_error():
    values = example("owner_and_helper.env", SECURE_AGGREGATION="on")
    with pytest.raises(ConfigError, match="SECURE_AGGREGATION=on needs at least 2 owners"):
        make_plan(values, 1)
