"""Chunked FedAvg (AGGREGATION=reduce) gives exactly central FedAvg's weights, for any cut."""

from __future__ import annotations

import pytest
import torch

from splitnet.learning.averaging import average_replicas
from splitnet.learning.chunks import assemble, chunk_ranges, cut, reduce_chunk

SHAPES = {"conv.weight": (8, 3, 3, 3), "conv.bias": (8,), "bn.num_batches_tracked": (),
          "bn.running_mean": (8,), "fc.weight": (10, 7)}


def _replica(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {name: torch.randn(shape, generator=g) * 3 for name, shape in SHAPES.items()}
    state["bn.num_batches_tracked"] = torch.tensor(seed * 7 + 3)
    return state


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
def test_chunks_cover_every_element_once(count):
    total = sum(torch.Size(s).numel() for s in SHAPES.values())
    covered = {name: torch.zeros(torch.Size(shape).numel(), dtype=torch.int64)
               for name, shape in SHAPES.items()}
    for index in range(count):
        for name, (a, b) in chunk_ranges(SHAPES, index, count).items():
            covered[name][a:b] += 1
    assert all(bool((c == 1).all()) for c in covered.values())
    assert sum(c.numel() for c in covered.values()) == total


@pytest.mark.parametrize("owners, holders, weights", [
    ([1, 2, 3], 3, {1: 100.0, 2: 250.0, 3: 7.0}),
    ([1, 2, 3, 4, 5], 2, {1: 1.0, 2: 1.0, 3: 3.0, 4: 1000.0, 5: 13.0}),  # offloaded: 2 holders
    ([2, 4, 6, 8, 10, 12, 14, 16], 8, {o: float(o * 31 % 97 + 1) for o in range(2, 17, 2)}),
    ([3, 1], 5, {1: 0.5, 3: 0.25}),
])
def test_the_chunked_reduce_is_bit_exact_with_average_replicas(owners, holders, weights):
    replicas = {o: _replica(o) for o in owners}
    central = average_replicas([{f"{o}/4/{n}": t for n, t in replicas[o].items()}
                                for o in owners], weights)
    chunks = [reduce_chunk({o: cut(replicas[o], chunk_ranges(SHAPES, i, holders))
                            for o in owners}, weights) for i in range(holders)]
    dtypes = {name: t.dtype for name, t in replicas[owners[0]].items()}
    reduced = assemble(SHAPES, dtypes, chunks)
    assert reduced.keys() == {key.split("/", 1)[1] for key in central}
    for name, tensor in reduced.items():
        expected = central[f"4/{name}"]
        assert tensor.dtype == expected.dtype and tensor.shape == expected.shape
        assert torch.equal(tensor, expected), name
    assert reduced["bn.num_batches_tracked"].dtype == torch.int64


def test_assemble_refuses_a_short_or_mistyped_piece():
    replica = _replica(1)
    chunks = [cut(replica, chunk_ranges(SHAPES, i, 2)) for i in range(2)]
    dtypes = {name: t.dtype for name, t in replica.items()}
    short = [dict(chunks[0]), chunks[1]]
    short[0]["conv.bias"] = short[0]["conv.bias"][:-1]
    with pytest.raises(ValueError, match="conv.bias"):
        assemble(SHAPES, dtypes, short)
    typed = [dict(chunks[0]), chunks[1]]
    typed[0]["conv.bias"] = typed[0]["conv.bias"].double()
    with pytest.raises(ValueError, match="float64"):
        assemble(SHAPES, dtypes, typed)


def test_a_chunk_out_of_range_and_an_owner_without_weight_are_named():
    with pytest.raises(ValueError, match="chunk 3 of 3"):
        chunk_ranges(SHAPES, 3, 3)
    with pytest.raises(ValueError, match=r"no weight for owner\(s\) \[2\]"):
        reduce_chunk({1: {"w": torch.zeros(2)}, 2: {"w": torch.zeros(2)}}, {1: 1.0})
