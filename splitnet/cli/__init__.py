"""The ``splitnet`` command: parses arguments and calls the library; nothing else.

Exit codes (see ``splitnet.errors``): 0 success, 1 runtime failure, 2 bad configuration or usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from splitnet.cli import commands
from splitnet.cli.bench_parser import add_bench, check_bench_options_ahead
from splitnet.config import catalog
from splitnet.errors import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    SplitnetError,
)

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit with the configuration code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message}\n")


def _add_env_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-file", type=Path, default=None, metavar="F",
                        help="env file to read (default: ./.env if present)")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = _Parser(prog="splitnet", description="Split-learning orchestration.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    validate = sub.add_parser("validate", help="check settings and plan; print a summary")
    _add_env_file(validate)
    validate.set_defaults(handler=commands.cmd_validate)

    plan = sub.add_parser("plan", help="show the placement and schedules, or --generate lists")
    _add_env_file(plan)
    plan.add_argument("--format", choices=("text", "json"), default="text",
                      help="the placement and schedules, or --generate's lists, as text "
                           "(default) or JSON")
    plan.add_argument("--generate", action="store_true",
                      help="write a valid SIMULATION_STAGES_CLIENTS instead of reading one")
    plan.add_argument("--clients", type=int, metavar="N", help="with --generate: clients")
    plan.add_argument("--partitions", type=int, metavar="P", help="with --generate: partitions")
    plan.add_argument("--model", type=str.upper, choices=catalog.model_names(),
                      help="with --generate: take P from this model (any case, as in .env)")
    plan.add_argument("--bert-model", type=str.lower, choices=sorted(catalog.BERT_LAYERS),
                      default=None, help="with --generate --model BERT: its size (default tiny)")
    plan.add_argument("--owners", metavar="LIST",
                      help="with --generate: data owners, e.g. 1,2,3 (default: every client)")
    plan.add_argument("--offload", action="append", default=[], metavar="SPEC",
                      help="with --generate: OWNER:PARTITIONS=RUNNER, e.g. 1:2-3=4 (repeatable)")
    plan.add_argument("--auto", action="store_true",
                      help="search the placement with the lowest predicted round time (from "
                           "the profile, CLIENT_SPEED, CLIENT_BANDWIDTH, CLIENT_RTT)")
    plan.add_argument("--profile", type=Path, default=None, metavar="F",
                      help="with --auto: a `splitnet profile --out` file (default: profile here)")
    plan.add_argument("--budget", type=float, default=None, metavar="S",
                      help="with --auto: seconds the search for moves may take (default "
                      "10); profiling and predicting all-local and the current plan come on "
                      "top and grow with a round's batches")
    plan.set_defaults(handler=commands.cmd_plan)

    profile = sub.add_parser("profile", help="time each partition's forward and backward here")
    _add_env_file(profile)
    profile.add_argument("--out", type=Path, default=None, metavar="F",
                         help="also write the profile as JSON (for plan --auto --profile)")
    profile.add_argument("--iterations", type=int, default=10, help="timed batches (default 10)")
    profile.set_defaults(handler=commands.cmd_profile)

    run = sub.add_parser("run", help="run one client (what a container runs)")
    _add_env_file(run)
    run.set_defaults(handler=commands.cmd_run)

    local = sub.add_parser("local", help="run every client as a process on loopback")
    _add_env_file(local)
    local.add_argument("--restart-on-failure", action="store_true",
                       help="start a client that exits non-zero again (at most 3 times), as a "
                            "container restart policy does")
    local.add_argument("--tls", choices=("on", "off"), default=None,
                       help="on (default, unless the configuration sets TLS=off): mutual TLS "
                            "with a throw-away CA made for the run; off: the shared token "
                            "alone, only to measure what TLS costs")
    local.add_argument("--wan", action="append", default=[], metavar="SPEC",
                       help="emulate a WAN between the clients (root, Linux; no netem needed): "
                            "'delay=10ms,jitter=1ms,loss=0.5%%,rate=100mbit' for every client's "
                            "egress, 'K:delay=40ms' for client K only (repeatable)")
    local.set_defaults(handler=commands.cmd_local)

    baseline = sub.add_parser("baseline", help="train the same model centrally, one process")
    _add_env_file(baseline)
    baseline.set_defaults(handler=commands.cmd_baseline)

    compose = sub.add_parser("compose", help="write docker-compose files for N clients")
    compose.add_argument("--clients", type=int, required=True, metavar="N")
    compose.add_argument("--swarm", action="store_true", help="write the Swarm stack file")
    compose.add_argument("--server", type=int, default=None, metavar="K",
                         help="with --swarm: the aggregator's client number (SERVER_NUMBER), "
                              "whose service gets the large resources (default 1)")
    compose.add_argument("--output", type=Path, default=None,
                         help="file to write (default: docker-compose.yml or "
                              "docker-compose-swarm.yml; '-' for stdout)")
    compose.set_defaults(handler=commands.cmd_compose)

    report = sub.add_parser("report", help="figures and a markdown summary of a run")
    report.add_argument("results", nargs="?", type=Path, default=None,
                        help="a results directory (its latest run) or a run folder "
                             "RESULTS/runs/ID (default: RESULTS_DIR from the environment or "
                             "the env file, else ./results)")
    _add_env_file(report)
    report.add_argument("--baseline", type=Path, default=None,
                        help="a baseline results directory (default: RESULTS/baseline if present)")
    report.set_defaults(handler=commands.cmd_report)

    status = sub.add_parser("status", help="list the cluster's client containers / tasks")
    status.add_argument("--project", default=None, help="only this Compose project")
    status.set_defaults(handler=commands.cmd_status)

    certs = sub.add_parser("certs", help="make a cluster CA and each client's key and "
                           "certificate for TLS=on (keys 0600, nothing overwritten)")
    certs.add_argument("--clients", type=int, metavar="N", help="clients 1..N")
    certs.add_argument("--add", type=int, action="append", default=[], metavar="K",
                       help="make client K's files with the CA already in --out (repeatable)")
    certs.add_argument("--out", type=Path, default=Path("certs"), help="folder (default certs)")
    certs.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    certs.add_argument("--host", action="append", default=[], metavar="NAME",
                       help="another DNS name or IP address in every certificate (repeatable)")
    certs.set_defaults(handler=commands.cmd_certs)

    health = sub.add_parser("health", help="exit 0 if this container's client answers")
    health.add_argument("--port", type=int, default=None, help="default: GRPC_PORT or 50051")
    health.set_defaults(handler=commands.cmd_health)

    add_bench(sub, _Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    words = list(argv if argv is not None else sys.argv[1:])
    args = build_parser().parse_args(words)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        check_bench_options_ahead(args, words)
        return handler(args)
    except SplitnetError as exc:
        print(f"splitnet {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"splitnet {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("SPLITNET_DEBUG"):
            traceback.print_exc()
        if isinstance(exc, OSError):  # a path the user gave that cannot be used (--out /proc/x)
            where = f": {exc.filename}" if exc.filename else ""
            print(f"splitnet {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        else:
            print(f"splitnet {args.command}: internal error: {type(exc).__name__}: {exc} "
                  "(set SPLITNET_DEBUG=1 for the traceback, and please report it)",
                  file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
