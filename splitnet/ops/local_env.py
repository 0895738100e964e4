"""What ``splitnet local`` gives each client: its own listeners, and the run's shared settings.

Note: local environment. The clients read the same env file as ``splitnet local`` and get an
environment that wins over it, so whatever ``local`` sets replaces the file's value for every
client. ``local`` therefore sets a key only where it must: each listener port a client opens is
its own (``GRPC_PORT`` through ``PEERS``, ``TENSOR_PORT``, ``TORRENT_PORT``, ``METRICS_PORT``; one
value for all would let one client bind it and the others fail), except ``METRICS_PORT=0``,
which stays off; an explicit ``CHECKPOINT_DIR`` or ``TORCH_THREADS`` is kept (only the defaults
are replaced: the run's own checkpoint folder, one torch thread per client).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from splitnet.config.envfile import read_env_file
from splitnet.config.load import merged_values
from splitnet.config.parsing import plain_int

__all__ = ["LocalPorts", "client_env", "defaults_env", "given_values", "metrics_on"]


def given_values(env_file: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Return the settings given: the env file's values, the environment's non-empty ones over.

    An empty value in the environment counts as unset (README), as in ``config.load``.
    """
    values = merged_values(read_env_file(env_file)[0] if env_file is not None else {}, environ)
    return {key: value for key, value in values.items() if value.strip() != ""}


def metrics_on(given: Mapping[str, str]) -> bool:
    """Return whether the clients serve metrics (``METRICS_PORT=0`` turns them off)."""
    try:
        return plain_int(given.get("METRICS_PORT", "")) != 0
    except ValueError:
        return True  # not a port: validate refuses it before any client starts


@dataclass(frozen=True)
class LocalPorts:
    """The free ports of one local run: four per client (gRPC, tensor, libtorrent, metrics)."""

    ports: list[int]

    @property
    def n(self) -> int:
        """Return how many clients the ports are for."""
        return len(self.ports) // 4

    def grpc(self, k: int) -> int:
        """Return client ``k``'s gRPC port (its ``PEERS`` entry)."""
        return self.ports[k - 1]

    def of(self, k: int) -> dict[str, int]:
        """Return client ``k``'s other listener ports, by key."""
        n = self.n
        return {"TENSOR_PORT": self.ports[n + k - 1], "TORRENT_PORT": self.ports[2 * n + k - 1],
                "METRICS_PORT": self.ports[3 * n + k - 1]}


def client_env(k: int, ports: LocalPorts, given: Mapping[str, str]) -> dict[str, str]:
    """Return what client ``k`` gets over the shared environment (Note: local environment)."""
    own = {"CLIENT_NUMBER": str(k)}
    own.update({key: str(port) for key, port in ports.of(k).items()})
    if not metrics_on(given):
        own["METRICS_PORT"] = "0"
    return own


def defaults_env(given: Mapping[str, str], checkpoints: Path) -> dict[str, str]:
    """Return checkpoints and torch threads: the given values, else ``local``'s own.

    Written out either way, so an empty environment value (unset) cannot shadow the file's.
    """
    return {"CHECKPOINT_DIR": given.get("CHECKPOINT_DIR", str(checkpoints)),
            "TORCH_THREADS": given.get("TORCH_THREADS", "1")}
