import pytest
import torch

from splitnet.learning.keys import StateKey, by_partition, flatten


@pytest.mark.parametrize("key", [StateKey(3, 2, "layers.0.weight"), StateKey(None, 12, "bias"),
                                 StateKey(1, 1, "bn.num_batches_tracked")])
def test_state_key_round_trips_through_its_text(key):
    assert StateKey.parse(str(key)) == key


def test_replica_and_averaged_keys_are_written_as_agreed():
    assert str(StateKey(4, 2, "fc.weight")) == "4/2/fc.weight"
    assert str(StateKey(None, 2, "fc.weight")) == "2/fc.weight"


@pytest.mark.parametrize("text", ["", "w", "0/w", "1/0/w", "1/2/", "a/2/w", "1/2/3/w", "-1/w",
                                  "1//w"])
def test_bad_key_text_is_refused_with_the_text_and_the_expected_form(text):
    with pytest.raises(ValueError, match=r"state key .*expected '\{owner\}/\{partition\}/\{name\}'") as info:
        StateKey.parse(text)
    assert repr(text) in str(info.value)


def test_by_partition_splits_averaged_keys_and_flatten_joins_them_back():
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    averaged = {"1/w": a, "2/w": b, "2/b": c}
    parts = by_partition(averaged)
    assert parts == {1: {"w": a}, 2: {"w": b, "b": c}}
    assert flatten(parts) == averaged
    assert list(flatten(parts, owner=5)) == ["5/1/w", "5/2/w", "5/2/b"]


def test_by_partition_refuses_a_replica_key():
    with pytest.raises(ValueError, match="'3/1/w': expected an averaged key"):
        by_partition({"3/1/w": torch.zeros(1)})
