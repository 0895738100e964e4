"""Chunked FedAvg for ``AGGREGATION=reduce``: cut partitions into chunks, reduce, reassemble.

A partition's tensors, names in sorted order, are read as one flat sequence of elements; holder
``i`` of ``n`` (holders ascending) reduces the elements ``[i·E//n, (i+1)·E//n)`` of it, which
touch one or more tensors (:func:`chunk_ranges`). A chunk is a dict of 1-D slices, one per
tensor it touches, keyed by the tensor's name.

Note: bit-exact reduce. :func:`reduce_chunk` averages a chunk with
:func:`~splitnet.learning.averaging.fedavg` itself, owners ascending: FedAvg is elementwise
(float64 accumulation, ``weight / total`` per owner, integer buffers rounded), so each element
of a chunk gets exactly the value :func:`~splitnet.learning.averaging.average_replicas` gives it
over whole tensors, whatever the cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from splitnet.learning.averaging import fedavg

__all__ = ["assemble", "chunk_ranges", "cut", "reduce_chunk"]

Shapes = Mapping[str, tuple[int, ...]]
"""A partition's tensor shapes by name."""


def chunk_ranges(shapes: Shapes, index: int, count: int) -> dict[str, tuple[int, int]]:
    """Return, per tensor chunk ``index`` of ``count`` touches, its element range ``[a, b)``.

    Names are read in sorted order; tensors the chunk does not touch (or empty ones) are left
    out. ValueError unless ``0 <= index < count``.
    """
    if not 0 <= index < count:
        raise ValueError(f"chunk {index} of {count}: expected 0 <= index < count")
    sizes = [(name, math.prod(shapes[name])) for name in sorted(shapes)]
    total = sum(size for _, size in sizes)
    low, high = index * total // count, (index + 1) * total // count
    ranges: dict[str, tuple[int, int]] = {}
    offset = 0
    for name, size in sizes:
        a, b = max(low - offset, 0), min(high - offset, size)
        if a < b:
            ranges[name] = (a, b)
        offset += size
    return ranges


def cut(tensors: Mapping[str, torch.Tensor],
        ranges: Mapping[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    """Return the 1-D slices ``ranges`` name of ``tensors`` (copies, contiguous)."""
    return {name: tensors[name].detach().reshape(-1)[a:b].clone()
            for name, (a, b) in ranges.items()}


def reduce_chunk(replicas: Mapping[int, Mapping[str, torch.Tensor]],
                 weights: Mapping[int, float]) -> dict[str, torch.Tensor]:
    """Return the weighted average of one chunk over its owners' replicas (Note: bit-exact reduce).

    ``replicas`` maps each owner to its slices of the chunk; ValueError for an owner without a
    weight or slices that differ in names, lengths or dtypes.
    """
    missing = sorted(replicas.keys() - weights.keys())
    if missing:
        raise ValueError(f"no weight for owner(s) {missing}")
    return fedavg([(dict(state), weights[owner]) for owner, state in sorted(replicas.items())])


def assemble(shapes: Shapes, dtypes: Mapping[str, torch.dtype],
             chunks: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Return whole tensors from every chunk of a partition (``chunks[i]``: chunk ``i``).

    ValueError when a piece is missing, has the wrong length or dtype.
    """
    count = len(chunks)
    pieces: dict[str, list[torch.Tensor]] = {name: [] for name in shapes}
    for index, chunk in enumerate(chunks):
        ranges = chunk_ranges(shapes, index, count)
        if chunk.keys() != ranges.keys():
            raise ValueError(f"chunk {index} of {count} has {sorted(chunk)[:3]}, expected "
                             f"{sorted(ranges)[:3]}")
        for name, (a, b) in ranges.items():
            piece = chunk[name]
            if piece.dim() != 1 or piece.numel() != b - a or piece.dtype != dtypes[name]:
                raise ValueError(f"chunk {index} of {count}: {name} is "
                                 f"{tuple(piece.shape)} {piece.dtype}, expected ({b - a},) "
                                 f"{dtypes[name]}")
            pieces[name].append(piece)
    whole: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        flat = torch.cat(pieces[name]) if pieces[name] else torch.empty(0, dtype=dtypes[name])
        if flat.numel() != math.prod(shape):
            raise ValueError(f"{name}: the chunks hold {flat.numel()} of "
                             f"{math.prod(shape)} elements")
        whole[name] = flat.reshape(shape)
    return whole
