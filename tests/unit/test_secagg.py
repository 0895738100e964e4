"""Secure aggregation's masks: they cancel exactly in the sum, and one payload looks uniform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from splitnet.learning.averaging import average_replicas
from splitnet.learning.models import InputSpec, build_partitions
from splitnet.learning.secagg import masked_sum, pair_seed, unmask_sum


def _public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _seeds(keys: dict[int, X25519PrivateKey], me: int) -> dict[int, bytes]:
    return {k: pair_seed(keys[me], _public(key), min(me, k), max(me, k), "run-a")
            for k, key in keys.items() if k != me}


def _cluster(seed: int = 0):
    """Client 1 holds owners 1 and 2's partition 1; clients 2, 3 hold owner 3's and their own."""
    gen = torch.Generator().manual_seed(seed)
    placement = {1: [(1, 1), (2, 1), (1, 2)], 2: [(2, 2), (3, 1)], 3: [(3, 2)]}
    states = {client: {f"{o}/{p}/{name}": torch.randn(shape, generator=gen) * 3
                       for o, p in replicas
                       for name, shape in (("w", (4, 5)), ("b", (5,)))}
              for client, replicas in placement.items()}
    for client, replicas in placement.items():  # an integer buffer, as batch norm has
        for o, p in replicas:
            states[client][f"{o}/{p}/count"] = torch.tensor(10 * o + p, dtype=torch.int64)
    holders = {1: [1, 2], 2: [1, 2, 3]}
    return states, holders


def test_masked_sums_add_up_to_plain_fedavg():
    states, holders = _cluster()
    keys = {k: X25519PrivateKey.generate() for k in (1, 2, 3)}
    weights = {1: 120, 2: 75, 3: 301}
    payloads = [masked_sum(states[k], weights, _seeds(keys, k), holders, k, round_=4)
                for k in (1, 2, 3)]
    dtypes = {text.split("/", 1)[1]: t.dtype for state in states.values()
              for text, t in state.items()}
    ours = unmask_sum(payloads, float(sum(weights.values())), dtypes)
    plain = average_replicas(states.values(), {k: float(v) for k, v in weights.items()})
    assert ours.keys() == plain.keys()
    for name, value in plain.items():
        if value.is_floating_point():
            assert ours[name].dtype == value.dtype
            relative = (ours[name] - value).norm() / value.norm()
            assert relative <= 1e-6, (name, float(relative))
        else:
            assert torch.equal(ours[name], value), name


def test_one_payload_alone_is_indistinguishable_from_uniform():
    _, holders = _cluster()
    big = {"1/2/w": torch.zeros(200_000), "2/2/w": torch.ones(200_000)}  # very structured
    keys = {k: X25519PrivateKey.generate() for k in (1, 2, 3)}
    payload = masked_sum(big, {1: 1, 2: 1}, _seeds(keys, 1), holders, 1, round_=0)
    data = payload["2/w"].numpy().view(np.uint8)
    counts = np.bincount(data, minlength=256)
    expected = data.size / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 330  # 255 degrees of freedom: p > 0.001 for uniform bytes
    bits = np.unpackbits(data)
    assert abs(bits.mean() - 0.5) < 0.002
    # without the other clients' masks the values cannot be recovered: they are not the sum
    alone = unmask_sum([payload], 2.0, {"2/w": torch.float32})
    assert not torch.allclose(alone["2/w"], torch.full((200_000,), 0.5), atol=1e3)


def test_masks_change_with_the_round_and_the_run():
    states, holders = _cluster()
    keys = {k: X25519PrivateKey.generate() for k in (1, 2, 3)}
    weights = {1: 1, 2: 1, 3: 1}
    one = masked_sum(states[2], weights, _seeds(keys, 2), holders, 2, round_=0)
    two = masked_sum(states[2], weights, _seeds(keys, 2), holders, 2, round_=1)
    other_run = {k: pair_seed(keys[2], _public(key), min(2, k), max(2, k), "run-b")
                 for k, key in keys.items() if k != 2}
    three = masked_sum(states[2], weights, other_run, holders, 2, round_=0)
    assert not torch.equal(one["2/w"], two["2/w"]) and not torch.equal(one["2/w"], three["2/w"])


def test_a_sum_too_large_for_the_ring_and_a_missing_weight_are_named():
    _, holders = _cluster()
    with pytest.raises(ValueError, match="too large for secure aggregation's ring"):
        masked_sum({"1/1/w": torch.full((3,), 1e12)}, {1: 10}, {2: bytes(32)}, holders, 1, 0)
    with pytest.raises(ValueError, match="has no owner weight"):
        masked_sum({"4/1/w": torch.ones(3)}, {1: 10}, {2: bytes(32)}, holders, 1, 0)


@pytest.mark.parametrize("model, spec", [
    ("CNN", InputSpec((1, 8, 8), 10)), ("RESNET18", InputSpec((3, 32, 32), 10)),
    ("RESNET50", InputSpec((3, 32, 32), 100)), ("BERT", InputSpec((16,), 4, 500))],
    ids=["CNN", "RESNET18", "RESNET50", "BERT"])
def test_every_models_states_average_like_fedavg(model, spec):
    """Three owners' replicas of a real model, spread over three clients, masked and summed."""
    parts = build_partitions(model, spec, seed=1, bert_model="tiny")
    base = {f"{p}/{name}": t for p, part in enumerate(parts, 1)
            for name, t in part.state_dict().items()}
    gen = torch.Generator().manual_seed(7)
    placement = {1: [1, 2], 2: [2, 3], 3: [3, 1]}  # client k: owner k's partitions ... and more
    partitions = len(parts)
    states: dict[int, dict[str, torch.Tensor]] = {1: {}, 2: {}, 3: {}}
    for owner in (1, 2, 3):
        for text, t in base.items():
            p = int(text.split("/", 1)[0])
            client = placement[owner][p % 2]  # each partition's replicas on two clients
            noise = torch.randn(t.shape, generator=gen) * 0.01 if t.is_floating_point() else 0
            states[client][f"{owner}/{text}"] = t + noise
    holders = {p: sorted({placement[o][p % 2] for o in (1, 2, 3)})
               for p in range(1, partitions + 1)}
    keys = {k: X25519PrivateKey.generate() for k in (1, 2, 3)}
    weights = {1: 300, 2: 120, 3: 77}
    payloads = [masked_sum(states[k], weights, _seeds(keys, k), holders, k, round_=2)
                for k in (1, 2, 3)]
    ours = unmask_sum(payloads, float(sum(weights.values())),
                      {text: t.dtype for text, t in base.items()})
    plain = average_replicas(states.values(), {k: float(v) for k, v in weights.items()})
    for name, value in plain.items():
        if value.is_floating_point() and value.norm() > 0:
            assert float((ours[name] - value).norm() / value.norm()) <= 1e-6, name
        else:
            assert torch.equal(ours[name], value), name
