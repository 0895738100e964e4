"""Fixtures shared by the unit tests of replicas and checkpoints."""

import pytest

from splitnet.learning.models import InputSpec, build_partitions

from ..conftest import plan_of


@pytest.fixture
def plan():
    """A CNN plan with offloaded partitions: client 3 holds replicas of other owners."""
    return plan_of("cnn_cross_offload.env")


@pytest.fixture
def parts():
    """The CNN's partitions for DIGITS, seeded."""
    return build_partitions("CNN", InputSpec((1, 8, 8), 10), seed=3)
