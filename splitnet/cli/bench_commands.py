"""The ``splitnet bench`` and ``splitnet attack`` handlers: each runs one bench, prints a table."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from splitnet.cli.commands import check_budget, usage
from splitnet.errors import EXIT_CONFIG, EXIT_OK

__all__ = [
    "cmd_attack",
    "cmd_bench",
    "cmd_bench_checkpoints",
    "cmd_bench_placement",
    "cmd_bench_privacy",
    "cmd_bench_reduce",
    "cmd_bench_transfer",
]


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``splitnet bench``."""
    from splitnet.bench.options import bench_options
    from splitnet.bench.report import table
    from splitnet.bench.systems import run_bench

    clients = args.clients
    if args.lab:  # checked before the loopback runs: no lab, nothing runs
        from splitnet.ops.lab import lab_nodes, lab_problem

        clients = clients if clients is not None else max(len(lab_nodes()), 2)
        if (problem := lab_problem(clients)) is not None:
            print(f"splitnet bench: {problem}", file=sys.stderr)  # one line, exit 2
            return EXIT_CONFIG
    options = bench_options(args.out, quick=args.quick, model=args.model, dataset=args.dataset,
                            clients=clients, rounds=args.rounds, epochs=args.epochs,
                            batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                            shaped=args.shaped, bulk_transport=args.bulk, rtt=args.rtt,
                            rate=args.rate, depths=args.depths, micro=args.micro,
                            target=args.target)
    report = run_bench(options, progress=lambda line: print(line, file=sys.stderr))
    print(table(report))
    if args.lab:
        _lab_rows(args.out, report, clients)
    print(f"\nraw results: {args.out / 'bench.json'}")
    return EXIT_OK


def _lab_rows(out: Path, report: dict[str, Any], clients: int) -> None:
    """Run the offload case on the lab; print its row beside loopback's; keep it in bench.json."""
    import json

    from splitnet.bench.lab import lab_row, lab_table, loopback_round

    loopback = next(r for r in report["rows"] if r["system"] == "splitnet offload")
    row = lab_row(out / "offload.env", clients, progress=lambda line: print(line, file=sys.stderr))
    text = lab_table(loopback, loopback_round(out), row)
    print("\n" + text)
    report["lab"] = row
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out / "bench.md").open("a") as md:
        md.write("\n" + text + "\n")


def cmd_bench_transfer(args: argparse.Namespace) -> int:
    """Run ``splitnet bench transfer``."""
    from splitnet.bench.options import transfer_options
    from splitnet.bench.transfer import run_transfer_bench

    o = transfer_options(args.sizes, args.receivers, args.payload, args.cap, args.resnet,
                         args.exchange)
    print(run_transfer_bench(o.sizes, o.receivers, o.payload, o.cap, o.resnet, o.exchange))
    return EXIT_OK


def cmd_bench_checkpoints(args: argparse.Namespace) -> int:
    """Run ``splitnet bench checkpoints``."""
    from splitnet.bench.checkpoint_cost import CASES, QUICK_CASES, run_checkpoint_bench

    if args.pairs < 1:
        raise usage(f"--pairs {args.pairs}: expected at least 1")
    print(run_checkpoint_bench(args.out, QUICK_CASES if args.quick else CASES,
                               1 if args.quick else args.pairs,
                               progress=lambda line: print(line, file=sys.stderr)))
    return EXIT_OK


def cmd_bench_reduce(args: argparse.Namespace) -> int:
    """Run ``splitnet bench reduce``."""
    from splitnet.bench.reduce_cost import run_reduce_bench

    if args.owners < 2 or args.rounds < 2:
        raise usage(f"--owners {args.owners} --rounds {args.rounds}: expected at least 2 of each")
    if args.rate is not None:  # checked here, not by the first splitnet local --wan it runs
        from splitnet.ops.wan import check_rate, wan_unavailable

        try:
            check_rate(args.rate)
        except ValueError:
            raise usage(f"--rate {args.rate!r}: expected a positive tc rate, e.g. 8mbit, "
                        "5mbps") from None
        if why := wan_unavailable():
            raise usage(f"--rate: {why}")
    print(run_reduce_bench(args.out, args.owners, args.model, args.dataset, args.rounds,
                           args.rate, args.bulk,
                           progress=lambda line: print(line, file=sys.stderr)))
    return EXIT_OK


def cmd_attack(args: argparse.Namespace) -> int:
    """Run ``splitnet attack label-leak`` or ``splitnet attack invert``."""
    from splitnet.bench.attack_options import attack_options
    from splitnet.bench.attacks import run_attack

    opts = attack_options(args.attack, args.out, sigmas=args.sigmas, clip=args.clip,
                          seed=args.seed, quick=args.quick)
    print(run_attack(opts, progress=lambda line: print(line, file=sys.stderr)))
    print(f"wrote {args.out / (args.attack + '.json')}", file=sys.stderr)
    return EXIT_OK


def cmd_bench_privacy(args: argparse.Namespace) -> int:
    """Run ``splitnet bench privacy``."""
    from splitnet.bench.privacy_cost import Case, privacy_table, run_privacy_bench
    from splitnet.bench.privacy_leakage import leakage_at

    cases = ([Case("CNN", "DIGITS", rounds=2, epochs=1)] if args.quick else
             [Case("CNN", "DIGITS", rounds=3, epochs=2),
              Case("RESNET18", "SYNTHETIC", rounds=2, epochs=1)])
    rows = run_privacy_bench(args.out, cases, lambda sigma: leakage_at(
        sigma, args.out / "attacks", quick=args.quick),
        progress=lambda line: print(line, file=sys.stderr))
    print(privacy_table(rows))
    return EXIT_OK


def cmd_bench_placement(args: argparse.Namespace) -> int:
    """Run ``splitnet bench placement``."""
    from splitnet.bench.placement import placement_table, run_placement_bench

    try:
        slowdown = [float(k) for k in args.slowdown.split(",")]
    except ValueError:
        slowdown = []
    if len(slowdown) != 5 or any(not 1 <= k < math.inf for k in slowdown):
        raise usage(f"--slowdown {args.slowdown}: expected 5 finite factors ≥ 1, e.g. 1,1,8,8,1")
    counts = {"--rounds": args.rounds, "--repeat": args.repeat, "--epochs": args.epochs,
              "--batch-size": args.batch_size}  # epochs, batch size None: the model's own
    for flag, value in counts.items():
        if value is not None and value < 1:
            raise usage(f"{flag} {value}: expected a whole number ≥ 1")
    if args.rounds < 2:
        raise usage(f"--rounds {args.rounds}: expected at least 2 (the first round warms up "
                    "and is left out of the measured round time)")
    check_budget(args.budget)
    if not 1 <= args.depth <= 64:
        raise usage(f"--depth {args.depth}: expected a PIPELINE_DEPTH from 1 to 64")
    rows = run_placement_bench(args.out, slowdown, args.rounds, args.epochs, args.batch_size,
                               args.budget, args.repeat,
                               progress=lambda line: print(line, file=sys.stderr),
                               depth=args.depth, model=args.model)
    print(placement_table(rows, slowdown))
    return EXIT_OK
