"""Settings: declared once in ``fields``, read by :func:`load`, grouped in :class:`Settings`."""

from splitnet.config.load import Check, load
from splitnet.config.network import peer_addresses, resolve_token
from splitnet.config.settings import (
    DataSettings,
    NetworkSettings,
    OutputSettings,
    RecoverySettings,
    Settings,
    ShapingSettings,
    TrainingSettings,
    TransportSettings,
)

__all__ = [
    "Check",
    "DataSettings",
    "NetworkSettings",
    "OutputSettings",
    "RecoverySettings",
    "Settings",
    "ShapingSettings",
    "TrainingSettings",
    "TransportSettings",
    "load",
    "peer_addresses",
    "resolve_token",
]
