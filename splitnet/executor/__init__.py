"""Stages compute; they never touch the network (see ``splitnet.runtime`` for who feeds them)."""

from splitnet.executor.replica import Replica, make_optimizer

__all__ = ["Replica", "make_optimizer"]
