"""Hypothesis strategies for random valid placements (shared by property tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from splitnet.plan.generate import generate_lists


@st.composite
def valid_lists(draw, max_clients: int = 6, max_partitions: int = 6):
    """Return (lists, num_clients, num_partitions) for a random valid placement."""
    n = draw(st.integers(1, max_clients))
    p = draw(st.integers(1, max_partitions))
    owners = draw(st.sets(st.integers(1, n), min_size=1))
    offload = {}
    for owner in owners:
        for partition in range(2, p):
            offload[(owner, partition)] = draw(st.integers(1, n))
    lists = generate_lists(n, p, owners, offload)
    lists = [draw(st.permutations(tasks)) for tasks in lists]
    return [list(tasks) for tasks in lists], n, p
