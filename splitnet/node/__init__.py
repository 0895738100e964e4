"""One client of a cluster, built from parts: membership, routing, rounds, aggregation."""

from splitnet.node.client import run_client
from splitnet.node.node import Node

__all__ = ["Node", "run_client"]
