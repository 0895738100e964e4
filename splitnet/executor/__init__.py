"""Stages compute; they never touch the network (see ``splitnet.runtime`` for who feeds them)."""

from splitnet.executor.segment import Segment, make_optimizer

__all__ = ["Segment", "make_optimizer"]
