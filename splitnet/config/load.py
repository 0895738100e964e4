"""The one way in: read the env file and the environment, validate, and return :class:`Settings`.

The environment wins over the env file, as in Docker (:func:`merged_values`). Every violation
(key, value, rule) is collected and raised at once as one :class:`~splitnet.errors.ConfigError`;
an unknown key close to a known one gets a warning suggesting it. A caller that checks more
(the plan's placement rules) passes ``check`` so that its violations are listed together with
the settings' own.

Note: empty means unset. Compose writes ``BATCH_SIZE=${BATCH_SIZE:-}`` into a container's
environment, which sets the key to an empty string when the host has no value: an empty (or
blank) value in the environment therefore counts as unset, and the env file's value stands. An
empty value in the file itself means the default. ``splitnet local`` reads what its clients will
read through the same :func:`merged_values`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from splitnet.config import catalog
from splitnet.config.costs import cost_violations
from splitnet.config.envfile import read_env_file
from splitnet.config.fields import FIELDS, KNOWN_KEYS, STAGES_KEY
from splitnet.config.listeners import listener_violations
from splitnet.config.network import token_file_findings, token_violation, token_warnings
from splitnet.config.parsing import show
from splitnet.config.settings import (
    DataSettings,
    NetworkSettings,
    OutputSettings,
    PlacementSettings,
    RecoverySettings,
    Settings,
    ShapingSettings,
    TrainingSettings,
    TransportSettings,
)
from splitnet.config.stages import read_stages
from splitnet.errors import ConfigError, Violation

__all__ = ["SHAPE_KEYS", "Check", "load", "merged_values"]

Check = Callable[[TrainingSettings], list[Violation]]
"""A further check of sound training settings, returning every violation it finds."""

SHAPE_KEYS = frozenset({"NUM_CLIENTS", "CURRENT_MODEL", "BERT_MODEL", STAGES_KEY})
"""The keys the task lists are read against: while one is bad, ``check`` is not run."""

_GROUPS: dict[str, type] = {
    "training": TrainingSettings, "data": DataSettings, "network": NetworkSettings,
    "transport": TransportSettings, "shaping": ShapingSettings, "output": OutputSettings,
    "recovery": RecoverySettings, "placement": PlacementSettings,
}


def load(
    env_file: Path | None = Path(".env"),
    environ: Mapping[str, str] | None = None,
    *,
    env_file_required: bool = False,
    values: Mapping[str, str] | None = None,
    check: Check | None = None,
) -> Settings:
    """Read and validate settings; raise one ConfigError listing every violation.

    ``env_file`` is read when it exists (or always, with ``env_file_required``); the process
    environment (``environ``, default ``os.environ``) wins over it. ``values`` replaces both:
    those raw ``KEY -> string`` values alone are validated (a ``CONFIG_FILE`` is then relative to
    the working directory). ``check`` runs on the training settings once the keys the task lists
    depend on are sound.
    """
    violations: list[Violation] = []
    warnings: list[str] = []
    base_dir = Path(".")
    source = ""
    if values is None:
        environ = os.environ if environ is None else environ
        raw: dict[str, str] = {}
        source = "the environment"
        if env_file is not None and (env_file_required or env_file.exists()):
            raw, violations, warnings = read_env_file(env_file)
            source = str(env_file)
            base_dir = env_file.parent
        values = merged_values(raw, environ)
    settings, bad_keys = _validate(values, violations, base_dir, source, tuple(warnings))
    if check is not None and not bad_keys & SHAPE_KEYS:
        violations += check(settings.training)
    if violations:
        raise ConfigError(violations, source, tuple(warnings))
    return settings


def merged_values(file_values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Return the env file's values with the environment's non-empty settings over them.

    Only known keys are taken from the environment; an empty or blank one counts as unset
    (Note: empty means unset).
    """
    merged = dict(file_values)
    merged.update({key: environ[key] for key in KNOWN_KEYS if environ.get(key, "").strip()})
    return merged


def _validate(values: Mapping[str, str], violations: list[Violation], base_dir: Path,
              source: str, warnings: tuple[str, ...]) -> tuple[Settings, set[str]]:
    """Parse every field (its default where a value is bad); return settings and bad keys."""
    bad_keys: set[str] = set()
    groups: dict[str | None, dict[str, Any]] = {group: {} for group in (*_GROUPS, None)}
    for spec in FIELDS:
        raw = values.get(spec.key)
        value = spec.default
        if raw is not None and raw.strip() != "":
            try:
                value = spec.parse(raw)
            except ValueError as exc:
                violations.append(Violation("setting", f"{spec.key}={show(raw)}: {exc}"))
                bad_keys.add(spec.key)
        groups[spec.group][spec.attr] = value
    training = groups["training"]
    training["stages_clients"] = read_stages(values, groups[None]["config_file"], base_dir,
                                             violations)
    if not training["stages_clients"]:
        bad_keys.add(STAGES_KEY)
    if training["num_clients"] is None:
        training["num_clients"] = len(training["stages_clients"]) or 1
    network = groups["network"]
    _check_cross_field(training, network["client_number"], violations)
    _check_pipelining(training, groups["transport"]["activation_transport"], violations)
    if network["peers"] and "PEERS" not in bad_keys:
        count, n = len(network["peers"].split(",")), training["num_clients"]
        if count != n:
            violations.append(Violation("setting", f"PEERS lists {count} address(es) but "
                                        f"NUM_CLIENTS={n}: expected one host:port per client"))
    if network["token"]:
        warnings += tuple(token_warnings(network["token"], "SPLITNET_TOKEN"))
        weak = token_violation(network["token"], "SPLITNET_TOKEN")
        if weak is not None:
            violations.append(weak)
            bad_keys.add("SPLITNET_TOKEN")
    file_problems, file_warnings = token_file_findings(network["token"], network["token_file"])
    violations += file_problems
    warnings += tuple(file_warnings)
    placement = groups["placement"]
    violations += cost_violations(placement["client_speed"], placement["client_bandwidth"],
                                  training["num_clients"])
    built = {name: cls(**groups[name]) for name, cls in _GROUPS.items()}
    violations += listener_violations(built["network"], built["transport"], built["output"],
                                      training["num_clients"], bad_keys)
    return Settings(**built, source=source, warnings=warnings), bad_keys


def _check_cross_field(training: dict[str, Any], client_number: int | None,
                       violations: list[Violation]) -> None:
    n = training["num_clients"]
    for key, value in (("CLIENT_NUMBER", client_number),
                       ("SERVER_NUMBER", training["server_number"])):
        if value is not None and value > n:
            violations.append(Violation("setting", f"{key}={value}: expected a client number "
                                        f"from 1 to NUM_CLIENTS={n}"))
    model, dataset = training["model"], training["dataset"]
    model_kind, data_kind = catalog.MODEL_KINDS[model], catalog.DATASET_KINDS[dataset]
    if data_kind not in ("any", model_kind):
        fitting = sorted(k for k, v in catalog.DATASET_KINDS.items() if v in (model_kind, "any"))
        violations.append(Violation("setting", f"CURRENT_DATASET={dataset} is {data_kind} data "
                                    f"but CURRENT_MODEL={model} takes {model_kind}; "
                                    f"use one of {', '.join(fitting)}"))


def _check_pipelining(training: dict[str, Any], transport: str,
                      violations: list[Violation]) -> None:
    depth, micro = training["pipeline_depth"], training["micro_batches"]
    if training["batch_size"] % micro:
        violations.append(Violation("setting", f"MICRO_BATCHES={micro} does not divide "
                                    f"BATCH_SIZE={training['batch_size']}: a batch is cut "
                                    "into equal micro-batches"))
    if (depth > 1 or micro > 1) and transport == "torrent":
        violations.append(Violation("setting", f"ACTIVATION_TRANSPORT=torrent with "
                                    f"PIPELINE_DEPTH={depth} and MICRO_BATCHES={micro}: "
                                    "several units of one owner in flight need a transport "
                                    "that keeps their order (direct or grpc)"))
