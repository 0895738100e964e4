import pytest
import torch

from splitnet.learning.averaging import fedavg


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
