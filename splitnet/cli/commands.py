"""The subcommands' handlers: each turns parsed arguments into one library call and prints."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from splitnet.errors import EXIT_OK
from splitnet.plan.generate import COMMAND_LINE

__all__ = [
    "usage",
    "check_budget",
    "check_out_file",
    "cmd_validate",
    "cmd_plan",
    "cmd_run",
    "cmd_local",
    "local_tls",
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
    _, plan = _prepare(args)  # SPLITNET_TOKEN_FILE is read and checked there, with the rest
    print(plan.summary())
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """Run ``splitnet plan``."""
    from splitnet.plan import generate, view

    _check_plan_mode(args)
    if args.auto:
        from splitnet.ops.autoplan import (
            DEFAULT_BUDGET_SECONDS,
            auto_plan,
            format_auto,
            load_profile,
        )

        budget = args.budget if args.budget is not None else DEFAULT_BUDGET_SECONDS
        settings, plan = _prepare(args)
        profile = load_profile(args.profile) if args.profile else None
        print(format_auto(auto_plan(settings, plan, profile, budget_seconds=budget)))
    elif args.generate:
        print(generate.generate(args.clients, args.partitions, args.model, args.bert_model,
                                args.owners, args.offload, args.format))
    else:
        print(view.render(_prepare(args)[1], args.format))
    return EXIT_OK


def _check_plan_mode(args: argparse.Namespace) -> None:
    """Refuse every flag given that ``plan``'s mode (view, --generate, --auto) would ignore."""
    from splitnet.errors import ConfigError, Violation

    mode = "--auto" if args.auto else "--generate" if args.generate else None
    generate_only = {"--clients": args.clients, "--partitions": args.partitions,
                     "--model": args.model, "--bert-model": args.bert_model,
                     "--owners": args.owners, "--offload": args.offload or None}
    auto_only = {"--profile": args.profile, "--budget": args.budget}
    problems = []
    if args.auto and args.generate:
        problems.append("--auto with --generate: pick one (--auto searches a placement for "
                        "the configuration; --generate writes lists without one)")
    for needs, flags in (("--generate", generate_only), ("--auto", auto_only)):
        for flag in (f for f, value in flags.items() if value is not None):
            if mode is None:
                problems.append(f"{flag} without {needs}: it is read only with {needs}")
            elif mode != needs and not (args.auto and args.generate):
                problems.append(f"{flag} with {mode}: it is read only with {needs}")
    if args.auto and args.format == "json":
        problems.append("--format json with --auto: --auto prints text only")
    if args.budget is not None and (why := budget_problem(args.budget)):
        problems.append(why)
    if args.generate and not args.auto and args.env_file is not None:
        problems.append("--env-file with --generate: --generate reads no configuration")
    if problems:
        raise ConfigError([Violation("usage", p) for p in problems], COMMAND_LINE)


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
    tls = local_tls(args.tls, settings.network.tls)
    if tls == "off" and settings.output.metrics_tls == "on" and settings.output.metrics_port:
        raise usage(f"{'--tls off' if args.tls else 'TLS=off'} with METRICS_TLS=on: the "
                    "metrics endpoint's TLS needs the run's CA; drop one of them")
    summary, folder = run_local(plan, path if path.exists() else None, results,
                                run_id=settings.output.run_id,
                                restarts=RESTARTS if args.restart_on_failure else 0,
                                tls=tls, wan=wan)
    print(summary_line(summary, folder))
    return EXIT_OK


def local_tls(flag: str | None, configured: str) -> str:
    """Return ``splitnet local``'s TLS: ``--tls`` if given, else the configuration's ``TLS=off``.

    Local runs make their own CA, so ``TLS=on`` and ``auto`` both mean on; only an explicit
    ``TLS=off`` in the file (or the environment) turns it off without the flag.
    """
    return flag or ("off" if configured == "off" else "on")


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

    print(write_compose(args.clients, args.swarm, args.output, args.server), end="")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Run ``splitnet report``."""
    from splitnet.telemetry.report import write_report
    from splitnet.telemetry.report_input import results_dir_setting

    path, required = _env_path(args)
    results = args.results or results_dir_setting(path, required=required)
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

    if args.port is not None and not 1 <= args.port <= 65535:
        raise usage(f"--port {args.port}: expected a port from 1 to 65535")
    code, line = check_health(args.port)
    print(line, file=sys.stdout if code == EXIT_OK else sys.stderr)
    return code


def cmd_certs(args: argparse.Namespace) -> int:
    """Run ``splitnet certs``."""
    from splitnet.ops.certs import check_certs_options, make_certs

    if (args.clients is None) == (not args.add):
        raise usage("certs needs --clients N (a new CA) or --add K (with the CA in --out)")
    check_certs_options(args.clients, args.add, args.days, args.host)
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


def budget_problem(seconds: float) -> str | None:
    """Say why a search ``--budget`` is no finite positive number of seconds, or None."""
    if not 0 < seconds < math.inf:
        return f"--budget {seconds:g}: expected a positive number of seconds"
    return None


def check_budget(seconds: float) -> None:
    """Refuse a search ``--budget`` that is not a finite positive number of seconds."""
    if why := budget_problem(seconds):
        raise usage(why)


def check_out_file(path: Path, flag: str) -> None:
    """Refuse a file ``flag`` names that cannot be written: no folder, a folder, not writable."""
    folder = path.parent
    if path.is_dir():
        raise usage(f"{flag} {path}: is a folder; expected a file to write")
    if not folder.is_dir():
        raise usage(f"{flag} {path}: the folder {folder} does not exist")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise usage(f"{flag} {path}: not writable")


def cmd_profile(args: argparse.Namespace) -> int:
    """Run ``splitnet profile``."""
    from splitnet.ops.autoplan import format_profile, profile_here, profile_text

    if args.iterations < 1:
        raise usage(f"--iterations {args.iterations}: expected at least 1")
    if args.out is not None:  # checked before the profiling, not after it
        check_out_file(args.out, "--out")
    settings, _ = _prepare(args)
    profile = profile_here(settings, iterations=args.iterations)
    print(profile_text(profile, settings.training.num_clients))
    if args.out is not None:
        args.out.write_text(format_profile(profile) + "\n")
        print(f"wrote {args.out}")
    return EXIT_OK
