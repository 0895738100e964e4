"""Typed settings from an env file and the process environment (the environment wins, as in Docker).

Every key is declared once in ``FIELDS`` with its parser and default. ``load_settings`` collects
every violation (key, value, rule) and raises one :class:`~splitnet.errors.ConfigError` listing
them all; unknown keys close to a known one get a warning suggesting it.
"""

from __future__ import annotations

import difflib
import io
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv.main import DotEnv
from dotenv.parser import parse_stream

from splitnet.config import catalog
from splitnet.config.parsing import (
    bandwidth,
    boolean,
    choice,
    integer,
    parse_literal,
    percent,
    positive_float,
    show,
    text,
    time_value,
)
from splitnet.errors import ConfigError, Violation

__all__ = [
    "FIELDS",
    "MAX_ENV_FILE_BYTES",
    "RawConfig",
    "Settings",
    "check_settings",
    "load_settings",
    "read_config",
    "read_env_file",
    "settings_from_values",
]

MAX_ENV_FILE_BYTES = 4 * 1024 * 1024
STAGES_KEY = "SIMULATION_STAGES_CLIENTS"
STAGES_ALIAS = "STAGES_CLIENTS"


@dataclass(frozen=True)
class Field:
    """One setting: its key, the attribute it fills, its parser and default."""

    key: str
    attr: str
    parse: Callable[[str], Any]
    default: Any = None
    help: str = ""


FIELDS: tuple[Field, ...] = (
    Field("NUM_CLIENTS", "num_clients", integer(1, 1024), None,
          "number of clients (default: the number of lists in SIMULATION_STAGES_CLIENTS)"),
    Field("CLIENT_NUMBER", "client_number", integer(1), None, "which client this process is"),
    Field("SERVER_NUMBER", "server_number", integer(1), 1, "the client that aggregates"),
    Field("CURRENT_MODEL", "model", choice(*catalog.model_names()), "CNN", "model to train"),
    Field("BERT_MODEL", "bert_model", choice(*catalog.BERT_LAYERS), "tiny", "BERT size"),
    Field("BERT_PRETRAINED", "bert_pretrained", text, None,
          "local safetensors file with published BERT weights (never downloaded)"),
    Field("CURRENT_DATASET", "dataset", choice(*catalog.DATASET_KINDS), "DIGITS", "dataset"),
    Field("BATCH_SIZE", "batch_size", integer(1, 1_000_000), 32, "samples per batch"),
    Field("TRAINING_NUM_ROUNDS", "num_rounds", integer(1, 1_000_000), 1, "averaging rounds"),
    Field("TRAINING_NUM_EPOCHS", "num_epochs", integer(1, 1_000_000), 1, "local epochs a round"),
    Field("DATASET_N_SPLITS", "dataset_n_splits", integer(1, 100_000), None,
          "training-set shards (default: the number of data owners)"),
    Field("FORWARD_BACKWARD_PAIR_STAGES", "pair_stages", parse_literal, None,
          "optional explicit stage pairing; must equal the canonical one"),
    Field("UPLOAD_BANDWIDTH", "upload_bandwidth", bandwidth, None, "egress rate cap (tc)"),
    Field("DOWNLOAD_BANDWIDTH", "download_bandwidth", bandwidth, None, "ingress rate cap (tc)"),
    Field("NETWORK_DELAY", "network_delay", time_value, None, "added latency (netem)"),
    Field("NETWORK_JITTER", "network_jitter", time_value, None, "latency jitter (netem)"),
    Field("NETWORK_LOSS", "network_loss", percent, None, "packet loss (netem)"),
    Field("NO_TC", "no_tc", boolean, False, "skip traffic shaping"),
    Field("SEED", "seed", integer(0, 2**32 - 1), 42, "seed for data split and weights"),
    Field("LEARNING_RATE", "learning_rate", positive_float, 0.05, "optimizer step size"),
    Field("OPTIMIZER", "optimizer", choice("SGD", "ADAM", "ADAMW"), "SGD", "optimizer"),
    Field("DATA_DIR", "data_dir", text, "./data", "where datasets are read from"),
    Field("DATASET_DOWNLOAD", "dataset_download", boolean, False, "download missing datasets"),
    Field("DATA_PARTITIONING", "data_partitioning", choice("iid", "dirichlet"), "iid",
          "how shards are cut"),
    Field("DIRICHLET_ALPHA", "dirichlet_alpha", positive_float, 0.5, "label skew (dirichlet)"),
    Field("PEERS", "peers", text, None, "comma-separated host:port of clients 1..N"),
    Field("GRPC_PORT", "grpc_port", integer(1, 65535), 50051, "gRPC port"),
    Field("LISTEN_HOST", "listen_host", text, "0.0.0.0", "address the gRPC server binds"),
    Field("TORCH_THREADS", "torch_threads", integer(0, 1024), 0,
          "torch intra-op threads per client (0: torch's default)"),
    Field("SPLITNET_TOKEN", "token", text, None, "cluster credential"),
    Field("SPLITNET_TOKEN_FILE", "token_file", text, None, "file holding the credential"),
    Field("JOIN_TIMEOUT", "join_timeout", positive_float, 120.0, "seconds to wait for peers"),
    Field("PEER_TIMEOUT", "peer_timeout", positive_float, 60.0, "seconds a peer may be silent"),
    Field("RESULTS_DIR", "results_dir", text, "./results", "where results are written"),
    Field("BULK_TRANSPORT", "bulk_transport", choice("auto", "torrent", "grpc"), "auto",
          "how model states and partitions travel (auto: BitTorrent from "
          "BULK_TORRENT_MIN_MIB up, gRPC below)"),
    Field("BULK_TORRENT_MIN_MIB", "bulk_torrent_min_mib", positive_float, 16.0,
          "with BULK_TRANSPORT=auto, the smallest object that goes over BitTorrent"),
    Field("ACTIVATION_TRANSPORT", "activation_transport", choice("direct", "grpc", "torrent"),
          "direct", "how activations and gradients travel"),
    Field("TENSOR_PORT", "tensor_port", integer(0, 65535), 0,
          "direct tensor channel listen port (0: any free port, announced at join)"),
    Field("TORRENT_PORT", "torrent_port", integer(0, 65535), 6881,
          "libtorrent listen port (0: any free port)"),
    Field("TORRENT_TIMEOUT", "torrent_timeout", positive_float, 120.0,
          "seconds a BitTorrent fetch may take"),
    Field("TORRENT_UTP", "torrent_utp", boolean, False, "allow uTP besides TCP"),
    Field("METRICS_PORT", "metrics_port", integer(0, 65535), 9100,
          "Prometheus /metrics port (0: off)"),
    Field("METRICS_HOLD", "metrics_hold", integer(0, 86400), 0,
          "seconds to keep serving /metrics after training, for a last scrape"),
    Field("CONFIG_FILE", "config_file", text, None,
          "file holding SIMULATION_STAGES_CLIENTS as data (JSON or a Python literal)"),
)
KNOWN_KEYS = frozenset({f.key for f in FIELDS} | {STAGES_KEY, STAGES_ALIAS})


@dataclass(frozen=True)
class Settings:
    """Validated settings. ``stages_clients`` holds the raw task strings, one list per client."""

    stages_clients: tuple[tuple[str, ...], ...]
    num_clients: int
    client_number: int | None = None
    server_number: int = 1
    model: str = "CNN"
    bert_model: str = "tiny"
    bert_pretrained: str | None = None
    dataset: str = "DIGITS"
    batch_size: int = 32
    num_rounds: int = 1
    num_epochs: int = 1
    dataset_n_splits: int | None = None
    pair_stages: Any = None
    upload_bandwidth: str | None = None
    download_bandwidth: str | None = None
    network_delay: str | None = None
    network_jitter: str | None = None
    network_loss: str | None = None
    no_tc: bool = False
    seed: int = 42
    learning_rate: float = 0.05
    optimizer: str = "SGD"
    data_dir: str = "./data"
    dataset_download: bool = False
    data_partitioning: str = "iid"
    dirichlet_alpha: float = 0.5
    peers: str | None = None
    grpc_port: int = 50051
    listen_host: str = "0.0.0.0"
    torch_threads: int = 0
    token: str | None = None
    token_file: str | None = None
    join_timeout: float = 120.0
    peer_timeout: float = 60.0
    results_dir: str = "./results"
    bulk_transport: str = "auto"
    bulk_torrent_min_mib: float = 16.0
    activation_transport: str = "direct"
    tensor_port: int = 0
    torrent_port: int = 6881
    torrent_timeout: float = 120.0
    torrent_utp: bool = False
    metrics_port: int = 9100
    metrics_hold: int = 0
    config_file: str | None = None
    source: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def num_partitions(self) -> int:
        """Return P for the chosen model."""
        return catalog.num_partitions(self.model, self.bert_model)


def read_env_file(path: Path) -> tuple[dict[str, str], list[Violation], list[str]]:
    """Read an env file as text; return its values, violations and warnings (never raises)."""
    try:
        size = path.stat().st_size
        if size > MAX_ENV_FILE_BYTES:
            return {}, [Violation("env-file", f"{path} is {size} bytes; the limit is "
                                  f"{MAX_ENV_FILE_BYTES} (is it really an env file?)")], []
        raw = path.read_bytes()
    except OSError as exc:
        return {}, [Violation("env-file", f"cannot read {path}: {exc.strerror or exc}")], []
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, [Violation("env-file", f"{path} is not UTF-8 text (byte {exc.start})")], []
    if "\x00" in content:
        return {}, [Violation("env-file", f"{path} contains NUL bytes; expected text")], []
    violations = [
        Violation("env-file", f"{path} line {binding.original.line}: cannot parse "
                  f"{show(binding.original.string.strip())}; expected KEY=VALUE")
        for binding in parse_stream(io.StringIO(content))
        if binding.error
    ]
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)  # we report bad lines ourselves
    values = DotEnv(None, stream=io.StringIO(content), interpolate=True).dict()
    clean = {key: value for key, value in values.items() if value is not None}
    warnings = _misspellings(clean, path)
    return clean, violations, warnings


def _misspellings(values: Mapping[str, str], path: Path) -> list[str]:
    warnings = []
    for key in values:
        if key in KNOWN_KEYS:
            continue
        close = difflib.get_close_matches(key.upper(), sorted(KNOWN_KEYS), n=1, cutoff=0.8)
        if close:
            warnings.append(f"{path}: unknown key {key} is ignored; did you mean {close[0]}?")
    return warnings


@dataclass(frozen=True)
class RawConfig:
    """Merged raw values (env file, then environment on top) and what reading them found."""

    values: dict[str, str]
    violations: list[Violation]
    warnings: list[str]
    source: str
    base_dir: Path


def read_config(
    env_file: Path | None = Path(".env"),
    environ: Mapping[str, str] | None = None,
    *,
    env_file_required: bool = False,
) -> RawConfig:
    """Merge the env file with the environment (the environment wins); never raises."""
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    violations: list[Violation] = []
    warnings: list[str] = []
    source = "the environment"
    if env_file is not None and (env_file_required or env_file.exists()):
        values, violations, warnings = read_env_file(env_file)
        source = str(env_file)
    values.update({key: environ[key] for key in KNOWN_KEYS if key in environ})
    base_dir = env_file.parent if env_file is not None else Path(".")
    return RawConfig(values, violations, warnings, source, base_dir)


def load_settings(
    env_file: Path | None = Path(".env"),
    environ: Mapping[str, str] | None = None,
    *,
    env_file_required: bool = False,
) -> Settings:
    """Read and validate settings; raise one ConfigError listing every violation."""
    raw = read_config(env_file, environ, env_file_required=env_file_required)
    return settings_from_values(raw.values, raw.violations, raw.warnings,
                                source=raw.source, base_dir=raw.base_dir)


def settings_from_values(
    values: Mapping[str, str],
    violations: list[Violation] | None = None,
    warnings: list[str] | None = None,
    *,
    source: str = "",
    base_dir: Path = Path("."),
) -> Settings:
    """Validate raw ``KEY -> string`` values; raise one ConfigError listing every violation."""
    settings, found, _ = check_settings(values, violations, warnings,
                                        source=source, base_dir=base_dir)
    if found:
        raise ConfigError(found, source, tuple(warnings or ()))
    return settings


def check_settings(
    values: Mapping[str, str],
    violations: list[Violation] | None = None,
    warnings: list[str] | None = None,
    *,
    source: str = "",
    base_dir: Path = Path("."),
) -> tuple[Settings, list[Violation], set[str]]:
    """Validate without raising: settings (defaults where a value was bad), violations, bad keys."""
    violations = list(violations or [])
    bad_keys: set[str] = set()
    parsed: dict[str, Any] = {}
    for spec in FIELDS:
        raw = values.get(spec.key)
        if raw is None or raw.strip() == "":
            parsed[spec.attr] = spec.default
            continue
        try:
            parsed[spec.attr] = spec.parse(raw)
        except ValueError as exc:
            violations.append(Violation("setting", f"{spec.key}={show(raw)}: {exc}"))
            parsed[spec.attr] = spec.default
            bad_keys.add(spec.key)
    stages = _read_stages(values, parsed.get("config_file"), base_dir, violations)
    if not stages:
        bad_keys.add(STAGES_KEY)
    if parsed["num_clients"] is None:
        parsed["num_clients"] = len(stages) if stages else 1
    _check_cross_field(parsed, violations)
    settings = Settings(stages_clients=stages, source=source, warnings=tuple(warnings or ()),
                        **parsed)
    return settings, violations, bad_keys


def _read_stages(
    values: Mapping[str, str],
    config_file: str | None,
    base_dir: Path,
    violations: list[Violation],
) -> tuple[tuple[str, ...], ...]:
    """Find the task lists (the key, its alias, or CONFIG_FILE) and check their shape."""
    given = [key for key in (STAGES_KEY, STAGES_ALIAS) if (values.get(key) or "").strip()]
    if config_file:
        given.append("CONFIG_FILE")
    if len(given) > 1:
        violations.append(Violation("setting", f"{' and '.join(given)} are all set; "
                                    "set only one source of the task lists"))
        return ()
    if not given:
        if any(v.rule == "env-file" for v in violations):
            return ()  # the env file could not be read; saying the key is missing adds nothing
        violations.append(Violation("setting", f"{STAGES_KEY} is not set; expected one list of "
                                    "tasks per client, e.g. [['1_1', '1_2'], ['2_1', '2_2']] "
                                    "(or name a file holding it in CONFIG_FILE)"))
        return ()
    if given[0] == "CONFIG_FILE":
        assert config_file is not None
        label, raw = _read_config_file(base_dir / config_file, violations)
        if raw is None:
            return ()
    else:
        label, raw = given[0], values[given[0]]
    try:
        data = parse_literal(raw)
    except ValueError as exc:
        violations.append(Violation("setting", f"{label} {exc}"))
        return ()
    if isinstance(data, dict) and STAGES_KEY in data:
        data = data[STAGES_KEY]
    return _check_shape(label, data, violations)


def _read_config_file(path: Path, violations: list[Violation]) -> tuple[str, str | None]:
    """Read CONFIG_FILE: a bare literal, a JSON object, or ``SIMULATION_STAGES_CLIENTS = [...]``."""
    label = f"CONFIG_FILE {path}"
    try:
        if path.stat().st_size > MAX_ENV_FILE_BYTES:
            violations.append(Violation("setting", f"{label} is larger than "
                                        f"{MAX_ENV_FILE_BYTES} bytes"))
            return label, None
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        violations.append(Violation("setting", f"cannot read {label}: {reason or exc}"))
        return label, None
    for line_no, line in enumerate(content.splitlines(), 1):
        key, sep, rest = line.partition("=")
        if sep and key.strip() in (STAGES_KEY, STAGES_ALIAS):
            # An old-style config assigns the list; keep everything after '=' as the literal.
            tail = "\n".join([rest, *content.splitlines()[line_no:]])
            return label, tail
    return label, content


def _check_shape(label: str, data: Any, violations: list[Violation]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(data, (list, tuple)):
        violations.append(Violation("setting", f"{label} is a {type(data).__name__}; expected a "
                                    "list with one list of tasks per client"))
        return ()
    lists: list[tuple[str, ...]] = []
    ok = True
    for client, entry in enumerate(data, 1):
        if not isinstance(entry, (list, tuple)):
            violations.append(Violation("setting", f"{label}: client {client}'s entry is "
                                        f"{show(repr(entry))}; expected a list of tasks"))
            ok = False
            continue
        for position, item in enumerate(entry, 1):
            if not isinstance(item, str):
                violations.append(Violation(
                    "task-syntax", f"item {position} of client {client}'s list is "
                    f"{show(repr(item))} ({type(item).__name__}); expected a string "
                    "'{owner}_{stage}', e.g. '1_3'"))
                ok = False
        lists.append(tuple(item for item in entry if isinstance(item, str)))
    return tuple(lists) if ok else ()


def _check_cross_field(parsed: dict[str, Any], violations: list[Violation]) -> None:
    n = parsed["num_clients"]
    for attr, key in (("client_number", "CLIENT_NUMBER"), ("server_number", "SERVER_NUMBER")):
        value = parsed[attr]
        if value is not None and value > n:
            violations.append(Violation("setting", f"{key}={value}: expected a client number "
                                        f"from 1 to NUM_CLIENTS={n}"))
    model, dataset = parsed["model"], parsed["dataset"]
    model_kind, data_kind = catalog.MODEL_KINDS[model], catalog.DATASET_KINDS[dataset]
    if data_kind not in ("any", model_kind):
        fitting = sorted(k for k, v in catalog.DATASET_KINDS.items() if v in (model_kind, "any"))
        violations.append(Violation("setting", f"CURRENT_DATASET={dataset} is {data_kind} data "
                                    f"but CURRENT_MODEL={model} takes {model_kind}; "
                                    f"use one of {', '.join(fitting)}"))
