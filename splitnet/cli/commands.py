"""The subcommands' handlers: each turns parsed arguments into one library call and prints."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from splitnet.errors import EXIT_OK

__all__ = [
    "usage",
    "cmd_validate",
    "cmd_plan",
    "cmd_run",
    "cmd_local",
    "cmd_baseline",
    "cmd_compose",
    "cmd_report",
    "cmd_status",
    "cmd_health",
    "cmd_certs",
    "cmd_profile",
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

    if args.auto:
        from splitnet.ops.autoplan import auto_plan, format_auto, load_profile

        if args.budget <= 0:
            raise usage(f"--budget {args.budget}: expected a positive number of seconds")
        settings, plan = _prepare(args)
        profile = load_profile(args.profile) if args.profile else None
        print(format_auto(auto_plan(settings, plan, profile, budget_seconds=args.budget)))
    elif args.generate:
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


def cmd_certs(args: argparse.Namespace) -> int:
    """Run ``splitnet certs``."""
    from splitnet.ops.certs import make_certs

    if (args.clients is None) == (not args.add):
        raise usage("certs needs --clients N (a new CA) or --add K (with the CA in --out)")
    clients = args.add or range(1, (args.clients or 0) + 1)
    written = make_certs(args.out, clients, hosts=args.host, days=args.days, add=bool(args.add))
    print("\n".join(f"wrote {path}" for path in written))
    print(f"give each client ca.crt and its own clientK.crt + clientK.key; keep {args.out}/ca.key "
          "off the clients; set TLS=on and TLS_DIR")
    return EXIT_OK


def usage(message: str) -> Exception:
    """Return the error for a command line that breaks ``message``'s rule (exit 2)."""
    from splitnet.errors import ConfigError, Violation

    return ConfigError(Violation("usage", message), "the command line")


def cmd_profile(args: argparse.Namespace) -> int:
    """Run ``splitnet profile``."""
    from splitnet.learning.profile import profile_partitions
    from splitnet.learning.threads import apply_threads
    from splitnet.ops.autoplan import format_profile, profile_text

    if args.iterations < 1:
        raise usage(f"--iterations {args.iterations}: expected at least 1")
    settings, _ = _prepare(args)
    apply_threads(0, settings.output.torch_interop_threads)
    profile = profile_partitions(settings.training, iterations=args.iterations,
                                 threads=settings.output.torch_threads or 1)
    print(profile_text(profile))
    if args.out is not None:
        args.out.write_text(format_profile(profile) + "\n")
        print(f"wrote {args.out}")
    return EXIT_OK
