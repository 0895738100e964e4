"""Replicas: one segment per run, weights out as replica keys and in as an averaged model."""

import pytest
import torch

from splitnet.errors import ProtocolError
from splitnet.learning.keys import StateKey, by_partition, flatten
from splitnet.runtime import Replicas


def test_one_segment_per_run_each_with_its_own_copy(plan, parts):
    replicas = Replicas(plan, 3, parts, "SGD", 0.1)
    assert [(s.owner, s.first, s.last) for s in replicas.segments] == [(3, 1, 1), (3, 4, 4),
                                                                       (5, 2, 3)]
    assert replicas.segment_for(5, 3) is replicas.segment_for(5, 2)
    assert replicas.segment_for(5, 2).modules[2] is not parts[1]
    with pytest.raises(KeyError):
        replicas.segment_for(1, 1)


def test_states_are_keyed_by_replica_and_load_average_fills_every_copy(plan, parts):
    replicas = Replicas(plan, 3, parts, "SGD", 0.1)
    states = replicas.states()
    keys = {StateKey.parse(k) for k in states}
    assert {(k.owner, k.partition) for k in keys} == {(3, 1), (3, 4), (5, 2), (5, 3)}
    assert all(str(k) in states for k in keys)
    averaged = {p: {name: torch.full_like(v, float(p)) for name, v in part.state_dict().items()}
                for p, part in enumerate(parts, 1)}
    replicas.load_average(flatten(averaged))
    for key, value in replicas.states().items():
        k = StateKey.parse(key)
        torch.testing.assert_close(value, by_partition(flatten(averaged))[k.partition][k.name])


def test_load_average_without_a_partition_is_refused(plan, parts):
    replicas = Replicas(plan, 3, parts, "SGD", 0.1)
    partial = flatten({1: parts[0].state_dict()})  # client 3 loads partition 1, then 4
    with pytest.raises(ProtocolError, match="client 3: the model has no partition 4"):
        replicas.load_average(partial)
