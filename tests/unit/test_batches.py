import pytest
import torch

from splitnet.learning.batches import epoch_batches, owner_generator


def test_an_epoch_visits_every_sample_once_in_batches_of_the_size_asked():
    batches = list(epoch_batches(10, 4, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def test_drop_last_leaves_out_the_short_batch():
    batches = list(epoch_batches(10, 4, torch.Generator().manual_seed(0), drop_last=True))
    assert [len(b) for b in batches] == [4, 4]
    assert list(epoch_batches(3, 4, torch.Generator().manual_seed(0), drop_last=True)) == []


def test_the_order_is_one_permutation_of_the_generator():
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    batches = list(epoch_batches(10, 3, torch.Generator().manual_seed(3)))
    assert torch.equal(torch.cat(batches), order)


def test_owner_generators_repeat_and_differ_by_owner_and_round():
    def first(seed, owner, round_):
        return next(epoch_batches(100, 100, owner_generator(seed, owner, round_))).tolist()

    assert first(42, 1, 0) == first(42, 1, 0)
    assert len({tuple(first(42, o, r)) for o in (1, 2) for r in (0, 1)} | {tuple(first(7, 1, 0))}) == 5


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size must be positive"):
        next(epoch_batches(10, 0, torch.Generator()))
