"""Validated settings in groups: training facts that must match, then what each client tunes.

``Settings.training`` holds every fact the plan is built from and that must be equal on all
clients; the other groups (data, network, transport, shaping, output, recovery) only concern
the client that reads them. Defaults and parsers live in ``splitnet.config.fields``; build a
``Settings`` with :func:`splitnet.config.load`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from splitnet.config import catalog

__all__ = [
    "DataSettings",
    "NetworkSettings",
    "OutputSettings",
    "PlacementSettings",
    "RecoverySettings",
    "Settings",
    "ShapingSettings",
    "TrainingSettings",
    "TransportSettings",
]


@dataclass(frozen=True)
class TrainingSettings:
    """What must match on every client. ``stages_clients``: the raw task strings per client."""

    stages_clients: tuple[tuple[str, ...], ...]
    num_clients: int
    server_number: int
    model: str
    bert_model: str
    dataset: str
    batch_size: int
    num_rounds: int
    num_epochs: int
    dataset_n_splits: int | None
    pair_stages: Any
    seed: int
    learning_rate: float
    optimizer: str
    data_partitioning: str
    dirichlet_alpha: float
    secure_aggregation: bool = False
    pipeline_depth: int = 1
    micro_batches: int = 1
    dp_activations: bool = False
    dp_gradients: bool = False
    dp_clip: float = 10.0
    dp_gradient_clip: float = 0.01
    dp_noise_multiplier: float = 1.0
    dp_delta: float = 1e-5
    aggregation: str = "central"

    @property
    def dp(self) -> bool:
        """Return whether anything is noised at the cut (DP_ACTIVATIONS or DP_GRADIENTS)."""
        return self.dp_activations or self.dp_gradients

    @property
    def num_partitions(self) -> int:
        """Return P for the chosen model."""
        return catalog.num_partitions(self.model, self.bert_model)


@dataclass(frozen=True)
class DataSettings:
    """Where this client reads datasets and pretrained weights from."""

    data_dir: str
    dataset_download: bool
    bert_pretrained: str | None


@dataclass(frozen=True)
class NetworkSettings:
    """Who this client is, where its peers are, and how it proves it belongs."""

    client_number: int | None
    peers: str | None
    grpc_port: int
    listen_host: str
    token: str | None
    token_file: str | None
    tls: str
    tls_dir: str
    join_timeout: float
    peer_timeout: float
    tensor_port: int


@dataclass(frozen=True)
class TransportSettings:
    """How activations, gradients and model states travel."""

    bulk_transport: str
    bulk_torrent_min_mib: float
    activation_transport: str
    torrent_port: int
    torrent_timeout: float
    torrent_utp: bool


@dataclass(frozen=True)
class ShapingSettings:
    """Traffic control the container entrypoint applies (tc / netem)."""

    upload_bandwidth: str | None
    download_bandwidth: str | None
    network_delay: str | None
    network_jitter: str | None
    network_loss: str | None
    no_tc: bool


@dataclass(frozen=True)
class OutputSettings:
    """What this client writes and serves, and how many threads torch uses."""

    results_dir: str
    metrics_port: int
    metrics_tls: str
    metrics_auth_file: str | None
    metrics_hold: int
    torch_threads: int
    torch_interop_threads: int
    run_id: str | None


@dataclass(frozen=True)
class RecoverySettings:
    """Where this client keeps round checkpoints, and what it does when a peer is lost."""

    checkpoint_dir: str
    checkpoint_keep: int
    resume: str
    failure_policy: str
    rejoin_timeout: float


@dataclass(frozen=True)
class PlacementSettings:
    """What ``splitnet plan --auto`` predicts with: speeds, links (bytes/s) and the RTT (s)."""

    client_speed: tuple[float, ...] | None = None
    client_bandwidth: tuple[float, ...] | None = None
    client_rtt: float | None = None  # None: 2 x NETWORK_DELAY, or 0 (an explicit 0 stays 0)


@dataclass(frozen=True)
class Settings:
    """Every setting, by group; ``source`` names where they came from for error messages."""

    training: TrainingSettings
    data: DataSettings
    network: NetworkSettings
    transport: TransportSettings
    shaping: ShapingSettings
    output: OutputSettings
    recovery: RecoverySettings
    source: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    placement: PlacementSettings = field(default_factory=PlacementSettings)
