"""The subcommands' handlers: each turns parsed arguments into one library call and prints."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from splitnet.errors import EXIT_OK

__all__ = [
    "cmd_validate",
    "cmd_plan",
    "cmd_run",
    "cmd_local",
    "cmd_baseline",
    "cmd_compose",
    "cmd_report",
    "cmd_status",
    "cmd_health",
    "cmd_bench",
    "cmd_bench_checkpoints",
    "cmd_bench_privacy",
    "cmd_bench_transfer",
    "cmd_attack",
    "cmd_certs",
]

if TYPE_CHECKING:
    from splitnet.config import Settings
    from splitnet.plan.plan import Plan

def _env_path(args: argparse.Namespace) -> tuple[Path, bool]:
    if args.env_file is not None:
        return args.env_file, True
    return Path(".env"), False


def _prepare(args: argparse.Namespace) -> tuple[Settings, Plan]:
    from splitnet.ops.prepare import prepare

    path, required = _env_path(args)
    settings, plan = prepare(path, env_file_required=required)
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return settings, plan


def cmd_validate(args: argparse.Namespace) -> int:
    """Run ``splitnet validate``."""
    from splitnet.config import resolve_token

    settings, plan = _prepare(args)
    if settings.network.token_file and not settings.network.token:
        resolve_token(settings)  # the file it names is read and checked, as at start
    print(plan.summary())
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """Run ``splitnet plan``."""
    from splitnet.plan import generate, view

    if args.generate:
        print(generate.generate(args.clients, args.partitions, args.model, args.bert_model,
                                args.owners, args.offload, args.format))
    else:
        print(view.render(_prepare(args)[1], args.format))
    return EXIT_OK


def _setup_logging(name: str) -> None:
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format=f"%(asctime)s {name} %(levelname)s %(message)s", datefmt="%H:%M:%S")


def cmd_run(args: argparse.Namespace) -> int:
    """Run ``splitnet run``."""
    from splitnet.node import run_client
    from splitnet.ops.summary import summary_line
    from splitnet.telemetry.runs import run_folder_of

    settings, plan = _prepare(args)
    _setup_logging(f"client{settings.network.client_number}")
    summary = run_client(plan, settings)
    if "test_accuracy" in summary:
        print(summary_line(summary, run_folder_of(Path(settings.output.results_dir))))
    return EXIT_OK


def cmd_local(args: argparse.Namespace) -> int:
    """Run ``splitnet local``."""
    from splitnet.ops.local import RESTARTS, run_local
    from splitnet.ops.summary import summary_line
    from splitnet.ops.wan import parse_links

    settings, plan = _prepare(args)
    wan = parse_links(args.wan, plan.num_clients) if args.wan else None
    path, _ = _env_path(args)
    results = Path(settings.output.results_dir)
    print(plan.summary(), flush=True)
    summary, folder = run_local(plan, path if path.exists() else None, results,
                                run_id=settings.output.run_id,
                                restarts=RESTARTS if args.restart_on_failure else 0,
                                checkpoint_dir=settings.recovery.checkpoint_dir,
                                extra_env={"TLS": "off"} if args.tls == "off" else None,
                                wan=wan)
    print(summary_line(summary, folder))
    return EXIT_OK


def cmd_baseline(args: argparse.Namespace) -> int:
    """Run ``splitnet baseline``."""
    from splitnet.ops.baseline import run_baseline
    from splitnet.ops.summary import summary_line

    settings, plan = _prepare(args)
    _setup_logging("baseline")
    results = Path(settings.output.results_dir) / "baseline"
    print(summary_line(run_baseline(settings, plan, results), results))
    return EXIT_OK


def cmd_compose(args: argparse.Namespace) -> int:
    """Run ``splitnet compose``."""
    from splitnet.ops.compose import write_compose

    print(write_compose(args.clients, args.swarm, args.output), end="")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Run ``splitnet report``."""
    from splitnet.telemetry.report import write_report

    results = args.results or Path(os.environ.get("RESULTS_DIR", "results"))
    print(f"wrote {write_report(results, args.baseline)}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Run ``splitnet status``."""
    from splitnet.ops.status import cluster_status, format_status

    print(format_status(cluster_status(args.project)))
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    """Run ``splitnet health``."""
    from splitnet.ops.health import check_health

    code, line = check_health(args.port)
    print(line, file=sys.stdout if code == EXIT_OK else sys.stderr)
    return code


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``splitnet bench``."""
    from splitnet.bench.options import bench_options
    from splitnet.bench.report import table
    from splitnet.bench.systems import run_bench

    options = bench_options(args.out, quick=args.quick, model=args.model, dataset=args.dataset,
                            clients=args.clients, rounds=args.rounds, epochs=args.epochs,
                            batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                            shaped=args.shaped, bulk_transport=args.bulk, rtt=args.rtt,
                            rate=args.rate, depths=args.depths, micro=args.micro,
                            target=args.target)
    report = run_bench(options, progress=lambda line: print(line, file=sys.stderr))
    print(table(report))
    print(f"\nraw results: {args.out / 'bench.json'}")
    return EXIT_OK


def cmd_bench_transfer(args: argparse.Namespace) -> int:
    """Run ``splitnet bench transfer``."""
    from splitnet.bench.options import transfer_options
    from splitnet.bench.transfer import run_transfer_bench

    o = transfer_options(args.sizes, args.receivers, args.payload, args.cap, args.resnet)
    print(run_transfer_bench(o.sizes, o.receivers, o.payload, o.cap, o.resnet,
                             max(args.exchange, 0)))
    return EXIT_OK


def cmd_certs(args: argparse.Namespace) -> int:
    """Run ``splitnet certs``."""
    from splitnet.errors import ConfigError, Violation
    from splitnet.ops.certs import make_certs

    if (args.clients is None) == (not args.add):
        raise ConfigError(Violation("usage", "certs needs --clients N (a new CA) or --add K "
                                             "(with the CA in --out)"), "the command line")
    clients = args.add or range(1, (args.clients or 0) + 1)
    written = make_certs(args.out, clients, hosts=args.host, days=args.days, add=bool(args.add))
    print("\n".join(f"wrote {path}" for path in written))
    print(f"give each client ca.crt and its own clientK.crt + clientK.key; keep {args.out}/ca.key "
          "off the clients; set TLS=on and TLS_DIR")
    return EXIT_OK


def cmd_bench_checkpoints(args: argparse.Namespace) -> int:
    """Run ``splitnet bench checkpoints``."""
    from splitnet.bench.checkpoint_cost import CASES, QUICK_CASES, run_checkpoint_bench
    from splitnet.errors import ConfigError, Violation

    if args.pairs < 1:
        raise ConfigError(Violation("usage", f"--pairs {args.pairs}: expected at least 1"),
                          "the command line")
    print(run_checkpoint_bench(args.out, QUICK_CASES if args.quick else CASES,
                               1 if args.quick else args.pairs,
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
