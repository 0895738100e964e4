"""What ``splitnet bench`` and ``splitnet bench transfer`` are asked to do, checked at once."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from splitnet.errors import ConfigError, Violation

__all__ = ["QUICK", "SHAPED_FORM", "BenchOptions", "TransferOptions", "bench_options",
           "command_line", "settings_lines", "transfer_options"]

QUICK = {"clients": 3, "rounds": 2, "epochs": 1}
RATE_FORM = re.compile(r"\d+(\.\d+)?(bit|kbit|mbit|gbit)")
SHAPED_FORM = re.compile(r"\d+(\.\d+)?(bit|kbit|mbit|gbit)(,\d+(\.\d+)?(us|ms|s))?")
_SIZES = {"clients": 5, "rounds": 10, "epochs": 3}
COMMAND_LINE = "the command line"
MAX_SEED = 2**32 - 1  # SEED's bound


@dataclass(frozen=True)
class BenchOptions:
    """What ``splitnet bench`` compares, and where it writes."""

    out: Path
    model: str = "CNN"
    dataset: str = "DIGITS"
    clients: int = 5
    rounds: int = 10
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 0.1
    seed: int = 42
    shaped: str | None = None
    bulk_transport: str = "auto"
    rtt: tuple[float, ...] = ()
    rate: str | None = None
    depths: tuple[int, ...] = (1, 2, 4, 8)
    micro: tuple[int, ...] = (1,)
    target: float = 0.95


def bench_options(out: Path, *, quick: bool = False, model: str = "CNN",
                  dataset: str = "DIGITS", clients: int | None = None,
                  rounds: int | None = None, epochs: int | None = None, batch_size: int = 32,
                  learning_rate: float = 0.1, seed: int = 42, shaped: str | None = None,
                  bulk_transport: str = "auto", rtt: str | None = None, rate: str | None = None,
                  depths: str = "1,2,4,8", micro: str | None = None,
                  target: float = 0.95) -> BenchOptions:
    """Return the options (``quick`` sizes where none is given); raise every problem at once."""
    given = {"clients": clients, "rounds": rounds, "epochs": epochs}
    defaults = QUICK if quick else _SIZES
    chosen = {k: v if v is not None else defaults[k] for k, v in given.items()}
    problems = [Violation("usage", f"--{k} {v}: expected a whole number of at least "
                                   f"{2 if k == 'clients' else 1}")
                for k, v in chosen.items() if v < (2 if k == "clients" else 1)]
    if shaped is not None and not SHAPED_FORM.fullmatch(shaped):
        problems.append(Violation("usage", f"--shaped {shaped!r}: expected RATE[,DELAY], "
                                           "e.g. 100mbit or 100mbit,5ms"))
    if batch_size < 1 or not 0 < learning_rate < math.inf:  # nan fails too
        problems.append(Violation("usage", "--batch-size and --lr must be positive"))
    if not 0 <= seed <= MAX_SEED:
        problems.append(Violation("usage", f"--seed {seed}: expected a whole number from 0 to "
                                           f"{MAX_SEED} (as SEED)"))
    rtts = _number_list(rtt, "--rtt", problems) if rtt is not None else []
    if rate is not None and not RATE_FORM.fullmatch(rate):
        problems.append(Violation("usage", f"--rate {rate!r}: expected a rate such as 100mbit"))
    depth_list = _int_list(depths, "--depths", problems)
    default_micro = "1,4" if model.upper().startswith("RESNET") else "1"
    micro_list = _int_list(micro or default_micro, "--micro", problems)
    problems += [Violation("usage", f"--micro {m}: does not divide --batch-size {batch_size}")
                 for m in micro_list if batch_size % m]
    if not 0 < target <= 1:
        problems.append(Violation("usage", f"--target {target}: expected an accuracy in (0, 1]"))
    if problems:
        raise ConfigError(problems, COMMAND_LINE)
    return BenchOptions(out=out, model=model.upper(), dataset=dataset.upper(),
                        batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                        shaped=shaped, bulk_transport=bulk_transport, rtt=tuple(rtts), rate=rate,
                        depths=tuple(depth_list), micro=tuple(micro_list), target=target,
                        **chosen)


def _number_list(text: str, option: str, problems: list[Violation]) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(not 0 <= v <= 10_000 for v in values):
        problems.append(Violation("usage", f"{option} {text!r}: expected milliseconds from 0 to "
                                           "10000 separated by commas, e.g. 0,5,20,50"))
    return values


def settings_lines(opts: BenchOptions, lists: list[list[str]]) -> list[str]:
    """Return the settings file of one bench case with the task ``lists`` (a line a key)."""
    return [f"NUM_CLIENTS={opts.clients}", f"CURRENT_MODEL={opts.model}",
            f"CURRENT_DATASET={opts.dataset}", f"BATCH_SIZE={opts.batch_size}",
            f"TRAINING_NUM_ROUNDS={opts.rounds}", f"TRAINING_NUM_EPOCHS={opts.epochs}",
            f"LEARNING_RATE={opts.learning_rate}", f"SEED={opts.seed}", "SERVER_NUMBER=1",
            f"BULK_TRANSPORT={opts.bulk_transport}", "NO_TC=true", "METRICS_HOLD=0",
            f"SIMULATION_STAGES_CLIENTS={json.dumps(lists)}"]


_FLAGS = {"model": "model", "dataset": "dataset", "clients": "clients", "rounds": "rounds",
          "epochs": "epochs", "batch_size": "batch-size", "learning_rate": "lr", "seed": "seed",
          "bulk_transport": "bulk", "shaped": "shaped", "rate": "rate", "target": "target"}


def command_line(opts: BenchOptions) -> str:
    """Return the ``splitnet bench`` command line that repeats this run."""
    defaults = BenchOptions(out=opts.out)
    lists = {"rtt": opts.rtt, "depths": opts.depths, "micro": opts.micro}
    listed = [f"--{flag} {','.join(f'{v:g}' for v in values)}" for flag, values in lists.items()
              if opts.rtt and values != getattr(defaults, flag)]
    return " ".join(["splitnet bench", *(f"--{flag} {getattr(opts, field)}"
                                         for field, flag in _FLAGS.items()
                                         if getattr(opts, field) != getattr(defaults, field)),
                     *listed])


@dataclass(frozen=True)
class TransferOptions:
    """What ``splitnet bench transfer`` measures."""

    sizes: list[int]
    receivers: list[int]
    payload: int
    cap: float
    resnet: bool = False
    exchange: int = 45
    """Round-end exchange state size, MiB (0: skip that pattern)."""


def transfer_options(sizes: str, receivers: str, payload: int, cap: float,
                     resnet: bool = False, exchange: int = 45) -> TransferOptions:
    """Parse the comma lists and check the numbers; raise every problem at once."""
    problems: list[Violation] = []
    size_list = _int_list(sizes, "--sizes", problems)
    receiver_list = _int_list(receivers, "--receivers", problems)
    if payload < 1:
        problems.append(Violation("usage", f"--payload {payload}: expected a whole number of "
                                           "MiB ≥ 1"))
    if not 0 < cap < math.inf:  # nan fails too
        problems.append(Violation("usage", f"--cap {cap:g}: expected a finite positive MiB/s"))
    if exchange < 0:
        problems.append(Violation("usage", f"--exchange {exchange}: expected MiB ≥ 0 "
                                           "(0: skip the exchange pattern)"))
    if problems:
        raise ConfigError(problems, COMMAND_LINE)
    return TransferOptions(size_list, receiver_list, payload, cap, resnet, exchange)


def _int_list(text: str, option: str, problems: list[Violation]) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        problems.append(Violation("usage", f"{option} {text!r}: expected positive integers "
                                           "separated by commas, e.g. 4,64"))
    return values
