import pytest
import torch

from splitnet.learning.averaging import average_replicas, fedavg


def test_weighted_average_of_floats_and_rounded_integers():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(1)}
    b = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor(4)}
    avg = fedavg([(a, 1.0), (b, 3.0)])
    torch.testing.assert_close(avg["w"], torch.tensor([3.0, 5.0]))
    assert avg["n"].dtype == torch.int64 and int(avg["n"]) == 3


def test_single_state_is_returned_unchanged():
    state = {"w": torch.randn(3, 3)}
    torch.testing.assert_close(fedavg([(state, 7.0)])["w"], state["w"])


@pytest.mark.parametrize("states, message", [
    ([], "nothing to average"),
    ([({"w": torch.zeros(2)}, 1.0), ({"v": torch.zeros(2)}, 1.0)], "has keys"),
    ([({"w": torch.zeros(2)}, 1.0), ({"w": torch.zeros(3)}, 1.0)], "state 1: w is"),
    ([({"w": torch.zeros(2)}, 0.0)], "weights must be positive"),
])
def test_inconsistent_states_are_refused(states, message):
    with pytest.raises(ValueError, match=message):
        fedavg(states)


def _replicas():
    torch.manual_seed(0)
    w = {(o, p): torch.randn(3, dtype=torch.float32) for o in (1, 2) for p in (1, 2)}
    n = {(o, p): torch.tensor(o * 10 + p) for o in (1, 2) for p in (1, 2)}
    # client 1 holds owner 1's partition 1 and owner 2's partition 2; client 2 the others
    placement = {1: [(1, 1), (2, 2)], 2: [(2, 1), (1, 2)]}
    clients = [{f"{o}/{p}/{name}": t[(o, p)] for o, p in placement[c]
                for name, t in (("w", w), ("n", n))} for c in (1, 2)]
    return w, n, clients


def test_average_replicas_is_the_sample_weighted_mean_of_each_partition():
    w, n, clients = _replicas()
    weights = {1: 30.0, 2: 10.0}
    averaged = average_replicas(clients, weights)
    assert sorted(averaged) == ["1/n", "1/w", "2/n", "2/w"]
    for p in (1, 2):
        expected = (w[(1, p)].double() * 30 + w[(2, p)].double() * 10) / 40
        torch.testing.assert_close(averaged[f"{p}/w"].double(), expected, atol=1e-7, rtol=0)
        assert averaged[f"{p}/w"].dtype == torch.float32
        assert int(averaged[f"{p}/n"]) == round((int(n[(1, p)]) * 30 + int(n[(2, p)]) * 10) / 40)


def test_average_replicas_does_not_depend_on_the_order_of_the_clients():
    _, _, clients = _replicas()
    weights = {1: 3.0, 2: 7.0}
    forward = average_replicas(clients, weights)
    backward = average_replicas(list(reversed(clients)), weights)
    shuffled = average_replicas([dict(reversed(c.items())) for c in clients], weights)
    for key, value in forward.items():
        assert torch.equal(value, backward[key]) and torch.equal(value, shuffled[key])


@pytest.mark.parametrize("clients, weights, message", [
    ([{"1/w": torch.zeros(1)}], {1: 1.0}, "not a replica's key"),
    ([{"1/1/w": torch.zeros(1)}, {"1/1/w": torch.zeros(1)}], {1: 1.0},
     "owner 1's partition 1 is in state 0 and in state 1"),
    ([{"1/1/w": torch.zeros(1)}, {"2/1/w": torch.zeros(1)}], {1: 1.0}, r"no weight for owner\(s\) \[2\]"),
    ([{"x": torch.zeros(1)}], {1: 1.0}, "state key 'x'"),
])
def test_average_replicas_refuses_what_it_cannot_average(clients, weights, message):
    with pytest.raises(ValueError, match=message):
        average_replicas(clients, weights)
