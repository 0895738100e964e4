"""Every setting, declared once: its key, the group and attribute it fills, its parser, default.

A group is one of the :class:`~splitnet.config.settings.Settings` groups (``training``,
``data``, ``network``, ``transport``, ``shaping``, ``output``, ``recovery``); ``CONFIG_FILE``
has none: it only says where the task lists are read from while loading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from splitnet.config import catalog
from splitnet.config.costs import bandwidth_list, client_rtt, speed_list
from splitnet.config.parsing import (
    boolean,
    choice,
    directory,
    folder,
    host,
    host_port_list,
    integer,
    number,
    open_fraction,
    parse_literal,
    positive_float,
    run_id,
    text,
)
from splitnet.config.shaping import bandwidth, percent, time_value

__all__ = ["DEFAULT_BULK_TORRENT_MIN_MIB", "DEFAULT_CHECKPOINT_DIR", "FIELDS", "GROUPS",
           "KNOWN_KEYS", "MAX_CLIENTS", "STAGES_ALIAS", "STAGES_KEY", "Field"]

STAGES_KEY = "SIMULATION_STAGES_CLIENTS"
STAGES_ALIAS = "STAGES_CLIENTS"
_LEARNING_RATE = number(1e-12, 10.0, "0.05")
_SECONDS = number(0.1, 1e7, "60")
GROUPS = ("training", "data", "network", "transport", "shaping", "output", "recovery",
          "placement")


@dataclass(frozen=True)
class Field:
    """One setting: its key, the group and attribute it fills, its parser and default."""

    key: str
    group: str | None
    attr: str
    parse: Callable[[str], Any]
    default: Any = None
    help: str = ""


MAX_CLIENTS = 1024
"""The most clients a cluster may have (``NUM_CLIENTS``, ``plan --generate --clients``)."""
DEFAULT_CHECKPOINT_DIR = "./checkpoints"
"""Where checkpoints go unless set (``splitnet local`` then uses the run's own folder)."""
DEFAULT_BULK_TORRENT_MIN_MIB = 4.0
"""``BULK_TORRENT_MIN_MIB`` unless set; also :class:`~splitnet.transport.network.NetworkOptions`'
default, so the two cannot disagree."""

FIELDS: tuple[Field, ...] = (
    # training: facts that must match on every client (the plan's fingerprint covers them)
    Field("NUM_CLIENTS", "training", "num_clients", integer(1, MAX_CLIENTS), None,
          "number of clients (default: the number of lists in SIMULATION_STAGES_CLIENTS)"),
    Field("SERVER_NUMBER", "training", "server_number", integer(1), 1,
          "the client that aggregates"),
    Field("CURRENT_MODEL", "training", "model", choice(*catalog.model_names()), "CNN",
          "model to train"),
    Field("BERT_MODEL", "training", "bert_model", choice(*catalog.BERT_LAYERS), "tiny",
          "BERT size"),
    Field("CURRENT_DATASET", "training", "dataset", choice(*catalog.DATASET_KINDS), "DIGITS",
          "dataset"),
    Field("BATCH_SIZE", "training", "batch_size", integer(1, 1_000_000), 32, "samples per batch"),
    Field("PIPELINE_DEPTH", "training", "pipeline_depth", integer(1, 64), 1,
          "batches of one owner in flight; above 1 each runs on stashed weights up to depth-1 "
          "steps stale (PipeDream weight stashing): faster across slow links, not exact SGD"),
    Field("MICRO_BATCHES", "training", "micro_batches", integer(1, 1024), 1,
          "micro-batches a batch is cut into (GPipe): stages overlap, one step per batch, "
          "exact up to float rounding; must divide BATCH_SIZE"),
    Field("TRAINING_NUM_ROUNDS", "training", "num_rounds", integer(1, 1_000_000), 1,
          "averaging rounds"),
    Field("TRAINING_NUM_EPOCHS", "training", "num_epochs", integer(1, 1_000_000), 1,
          "local epochs a round"),
    Field("DATASET_N_SPLITS", "training", "dataset_n_splits", integer(1, 100_000), None,
          "training-set shards (default: the number of data owners)"),
    Field("FORWARD_BACKWARD_PAIR_STAGES", "training", "pair_stages", parse_literal, None,
          "optional explicit stage pairing; must equal the canonical one"),
    Field("SEED", "training", "seed", integer(0, 2**32 - 1), 42,
          "seed for data split and weights"),
    Field("LEARNING_RATE", "training", "learning_rate", _LEARNING_RATE, 0.05,
          "optimizer step size"),
    Field("OPTIMIZER", "training", "optimizer", choice("SGD", "ADAM", "ADAMW"), "SGD",
          "optimizer"),
    Field("DATA_PARTITIONING", "training", "data_partitioning", choice("iid", "dirichlet"),
          "iid", "how shards are cut"),
    Field("DIRICHLET_ALPHA", "training", "dirichlet_alpha", positive_float, 0.5,
          "label skew (dirichlet)"),
    Field("SECURE_AGGREGATION", "training", "secure_aggregation", boolean, False,
          "on: the aggregator learns only each partition's weighted sum (pairwise masks)"),
    Field("AGGREGATION", "training", "aggregation", choice("central", "reduce"), "central",
          "central: the aggregator pulls every replica and pushes the average; reduce: the "
          "holders of each partition average it among themselves (reduce-scatter, all-gather)"),
    Field("DP_ACTIVATIONS", "training", "dp_activations", boolean, False,
          "on: clip each sample's activations an owner sends to another client and add Gaussian "
          "noise (differential privacy at the cut)"),
    Field("DP_GRADIENTS", "training", "dp_gradients", boolean, False,
          "on: the same for the gradient an owner's loss stage (P+1) sends to another client"),
    Field("DP_CLIP", "training", "dp_clip", positive_float, 10.0,
          "per-sample L2 norm bound C of noised activations"),
    Field("DP_GRADIENT_CLIP", "training", "dp_gradient_clip", positive_float, 0.01,
          "per-sample L2 norm bound of the noised loss gradient (a mean loss's: far smaller)"),
    Field("DP_NOISE_MULTIPLIER", "training", "dp_noise_multiplier", number(0, 1e6, "1.0"), 1.0,
          "noise standard deviation, as a multiple of DP_CLIP"),
    Field("DP_DELTA", "training", "dp_delta", open_fraction, 1e-5,
          "δ at which the privacy spent ε is reported"),
    # data: where this client reads datasets and weights from
    Field("DATA_DIR", "data", "data_dir", folder, "./data",
          "where datasets are read from (a folder, or one that can be created)"),
    Field("DATASET_DOWNLOAD", "data", "dataset_download", boolean, False,
          "download missing datasets"),
    Field("BERT_PRETRAINED", "data", "bert_pretrained", text, None,
          "local safetensors file with published BERT weights (never downloaded)"),
    # network: who this client is, where its peers are, how it proves it belongs
    Field("CLIENT_NUMBER", "network", "client_number", integer(1), None,
          "which client this process is"),
    Field("PEERS", "network", "peers", host_port_list, None,
          "comma-separated host:port of clients 1..N"),
    Field("GRPC_PORT", "network", "grpc_port", integer(1, 65535), 50051, "gRPC port"),
    Field("LISTEN_HOST", "network", "listen_host", host, "0.0.0.0",
          "address the gRPC server binds"),
    Field("SPLITNET_TOKEN", "network", "token", text, None, "cluster credential"),
    Field("SPLITNET_TOKEN_FILE", "network", "token_file", text, None,
          "file holding the credential"),
    Field("TLS", "network", "tls", choice("auto", "on", "off"), "auto",
          "on: mutual TLS with the certificates in TLS_DIR (splitnet certs); off: the token; "
          "auto: on when TLS_DIR holds ca.crt, else refused (off must be asked for)"),
    Field("TLS_DIR", "network", "tls_dir", directory, "./certs",
          "folder with ca.crt and this client's clientK.crt and clientK.key"),
    Field("JOIN_TIMEOUT", "network", "join_timeout", _SECONDS, 120.0,
          "seconds to wait for peers"),
    Field("PEER_TIMEOUT", "network", "peer_timeout", _SECONDS, 60.0,
          "seconds a peer may be silent"),
    Field("TENSOR_PORT", "network", "tensor_port", integer(0, 65535), 0,
          "direct tensor channel listen port (0: any free port, announced at join)"),
    # transport: how tensors and model states travel
    Field("BULK_TRANSPORT", "transport", "bulk_transport", choice("auto", "torrent", "grpc"),
          "auto", "how model states and partitions travel (auto: BitTorrent for models "
          "every client receives from BULK_TORRENT_MIN_MIB up, gRPC for the rest)"),
    Field("BULK_TORRENT_MIN_MIB", "transport", "bulk_torrent_min_mib", number(1e-6, 1e6, "4"),
          DEFAULT_BULK_TORRENT_MIN_MIB,
          "with BULK_TRANSPORT=auto, the smallest object that goes over BitTorrent "
          f"({DEFAULT_BULK_TORRENT_MIN_MIB:g}: the "
          "exchange is faster by torrent from 2-4 MiB at 8 MiB/s uplinks; BENCHMARKS.md)"),
    Field("ACTIVATION_TRANSPORT", "transport", "activation_transport",
          choice("direct", "grpc", "torrent"), "direct", "how activations and gradients travel"),
    Field("TORRENT_PORT", "transport", "torrent_port", integer(0, 65535), 6881,
          "libtorrent listen port (0: any free port)"),
    Field("TORRENT_TIMEOUT", "transport", "torrent_timeout", _SECONDS, 120.0,
          "seconds a BitTorrent fetch may take"),
    Field("TORRENT_UTP", "transport", "torrent_utp", boolean, False, "allow uTP besides TCP"),
    # shaping: traffic control the container entrypoint applies
    Field("UPLOAD_BANDWIDTH", "shaping", "upload_bandwidth", bandwidth, None,
          "egress rate cap (tc)"),
    Field("DOWNLOAD_BANDWIDTH", "shaping", "download_bandwidth", bandwidth, None,
          "ingress rate cap (tc)"),
    Field("NETWORK_DELAY", "shaping", "network_delay", time_value, None, "added latency (netem)"),
    Field("NETWORK_JITTER", "shaping", "network_jitter", time_value, None,
          "latency jitter (netem)"),
    Field("NETWORK_LOSS", "shaping", "network_loss", percent, None, "packet loss (netem)"),
    Field("NO_TC", "shaping", "no_tc", boolean, False, "skip traffic shaping"),
    # output: what this client writes and serves, and how hard it works
    Field("RESULTS_DIR", "output", "results_dir", directory, "./results",
          "where results are written"),
    Field("METRICS_PORT", "output", "metrics_port", integer(0, 65535), 9100,
          "Prometheus /metrics port (0: off)"),
    Field("METRICS_TLS", "output", "metrics_tls", choice("on", "off"), "off",
          "on: serve /metrics over HTTPS with this client's certificate in TLS_DIR"),
    Field("METRICS_AUTH_FILE", "output", "metrics_auth_file", text, None,
          "file holding user:password; /metrics then asks for HTTP basic auth"),
    Field("METRICS_HOLD", "output", "metrics_hold", integer(0, 86400), 0,
          "seconds to keep serving /metrics after training, for a last scrape"),
    Field("TORCH_THREADS", "output", "torch_threads", integer(0, 1024), 0,
          "torch intra-op threads per client (0: torch's default)"),
    Field("TORCH_INTEROP_THREADS", "output", "torch_interop_threads", integer(0, 1024), 0,
          "torch inter-op threads per client (0: torch's default)"),
    Field("RUN_ID", "output", "run_id", run_id, None,
          "the run's folder under RESULTS_DIR/runs (default: the aggregator makes one; a "
          "finished run's is refused)"),
    # recovery: round checkpoints, and what a client does when a peer is lost
    Field("CHECKPOINT_DIR", "recovery", "checkpoint_dir", directory, DEFAULT_CHECKPOINT_DIR,
          "where round checkpoints are written (one set of files per client)"),
    Field("CHECKPOINT_KEEP", "recovery", "checkpoint_keep", integer(0, 1_000_000), 2,
          "how many of this client's newest round checkpoints are kept (0: none are written "
          "and none resumed; a rejoin then starts again from round 0)"),
    Field("RESUME", "recovery", "resume", choice("auto", "never"), "auto",
          "auto: resume from the latest checkpoint every client has; never: start at round 0"),
    Field("FAILURE_POLICY", "recovery", "failure_policy", choice("wait", "drop", "abort"),
          "wait", "when a peer is lost: wait for it to rejoin, drop it, or abort the run"),
    Field("REJOIN_TIMEOUT", "recovery", "rejoin_timeout", number(1, 1e7, "300"), 300.0,
          "seconds survivors wait for a lost peer to rejoin (FAILURE_POLICY=wait), or for "
          "each other after a drop"),
    # placement: what `splitnet plan --auto` predicts with (no effect on a run)
    Field("CLIENT_SPEED", "placement", "client_speed", speed_list, None,
          "each client's compute speed relative to this machine's `splitnet profile` (1 = as "
          "fast), one number or one per client, e.g. [1,1,0.5,0.5,1]"),
    Field("CLIENT_BANDWIDTH", "placement", "client_bandwidth", bandwidth_list, None,
          "each client's link, a tc rate or one per client, e.g. 100mbit (default unlimited)"),
    Field("CLIENT_RTT", "placement", "client_rtt", client_rtt, None,
          "round-trip time between two clients, e.g. 20ms (default 2 x NETWORK_DELAY, or 0)"),
    # loading only
    Field("CONFIG_FILE", None, "config_file", text, None,
          "file holding SIMULATION_STAGES_CLIENTS as data (JSON or a Python literal)"),
)
KNOWN_KEYS = frozenset({f.key for f in FIELDS} | {STAGES_KEY, STAGES_ALIAS})
