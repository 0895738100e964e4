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

from splitnet.cli import bench_commands, commands
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
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.add_argument("--generate", action="store_true",
                      help="write a valid SIMULATION_STAGES_CLIENTS instead of reading one")
    plan.add_argument("--clients", type=int, metavar="N", help="with --generate: clients")
    plan.add_argument("--partitions", type=int, metavar="P", help="with --generate: partitions")
    plan.add_argument("--model", choices=catalog.model_names(),
                      help="with --generate: take P from this model")
    plan.add_argument("--bert-model", choices=sorted(catalog.BERT_LAYERS), default="tiny")
    plan.add_argument("--owners", metavar="LIST",
                      help="with --generate: data owners, e.g. 1,2,3 (default: every client)")
    plan.add_argument("--offload", action="append", default=[], metavar="SPEC",
                      help="with --generate: OWNER:PARTITIONS=RUNNER, e.g. 1:2-3=4 (repeatable)")
    plan.add_argument("--auto", action="store_true",
                      help="search the placement with the lowest predicted round time (from "
                           "the profile, CLIENT_SPEED, CLIENT_BANDWIDTH, CLIENT_RTT)")
    plan.add_argument("--profile", type=Path, default=None, metavar="F",
                      help="with --auto: a `splitnet profile --out` file (default: profile here)")
    plan.add_argument("--budget", type=float, default=10.0, metavar="S",
                      help="with --auto: seconds the search may take (default 10)")
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
    local.add_argument("--tls", choices=("on", "off"), default="on",
                       help="on (default): mutual TLS with a throw-away CA made for the run; "
                            "off: the shared token alone, only to measure what TLS costs")
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
    compose.add_argument("--output", type=Path, default=None,
                         help="file to write (default: docker-compose.yml or "
                              "docker-compose-swarm.yml; '-' for stdout)")
    compose.set_defaults(handler=commands.cmd_compose)

    report = sub.add_parser("report", help="figures and a markdown summary of a run")
    report.add_argument("results", nargs="?", type=Path, default=None,
                        help="a results directory (its latest run) or a run folder "
                             "RESULTS/runs/ID (default: RESULTS_DIR or ./results)")
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

    bench = sub.add_parser(
        "bench", help="split training vs centralized PyTorch and torch pipelining, one run "
        "(ratios against the same run's centralized baseline); 'bench transfer': transports")
    bench.add_argument("--quick", action="store_true",
                       help="a smoke run: 3 clients, 2 rounds x 1 epoch (unless given)")
    bench.add_argument("--model", default="CNN", help="CURRENT_MODEL (default CNN)")
    bench.add_argument("--dataset", default="DIGITS", help="CURRENT_DATASET (default DIGITS)")
    bench.add_argument("--clients", type=int, default=None, help="clients (default 5)")
    bench.add_argument("--rounds", type=int, default=None, help="rounds (default 10)")
    bench.add_argument("--epochs", type=int, default=None, help="epochs per round (default 3)")
    bench.add_argument("--batch-size", type=int, default=32, help="BATCH_SIZE (default 32)")
    bench.add_argument("--lr", type=float, default=0.1, help="LEARNING_RATE (default 0.1)")
    bench.add_argument("--seed", type=int, default=42, help="SEED (default 42)")
    bench.add_argument("--bulk", default="auto", choices=("auto", "torrent", "grpc"),
                       help="BULK_TRANSPORT for the splitnet runs (default auto)")
    bench.add_argument("--shaped", default=None, metavar="RATE[,DELAY]",
                       help="also run the offload case under tc shaping, e.g. 100mbit,5ms")
    bench.add_argument("--rtt", default=None, metavar="MS[,MS...]",
                       help="also run the offload case across an emulated WAN at each "
                       "round-trip time, e.g. 0,5,20,50 (needs root; see splitnet local --wan)")
    bench.add_argument("--rate", default=None, metavar="RATE",
                       help="with --rtt: each client's egress rate, e.g. 100mbit")
    bench.add_argument("--depths", default="1,2,4,8", metavar="K[,K...]",
                       help="with --rtt: PIPELINE_DEPTH values (default 1,2,4,8)")
    bench.add_argument("--micro", default=None, metavar="M[,M...]",
                       help="with --rtt: MICRO_BATCHES values (default 1; 1,4 for ResNet)")
    bench.add_argument("--target", type=float, default=0.95,
                       help="with --rtt: the accuracy whose time to reach is reported")
    bench.add_argument("--out", type=Path, default=Path("results/bench"),
                       help="where runs, bench.json and bench.md go (default results/bench)")
    bench.add_argument("--lab", action="store_true",
                       help="also run the offload case as a Swarm stack across the multi-node lab "
                       "(scripts/swarm-lab.sh up) and print its row beside loopback's")
    bench.set_defaults(handler=bench_commands.cmd_bench)
    bench_sub = bench.add_subparsers(dest="bench", required=False, parser_class=_Parser)
    transfer = bench_sub.add_parser("transfer", help="libtorrent vs gRPC vs raw TCP")
    transfer.add_argument("--sizes", default="4,64,256", help="point-to-point sizes, MiB")
    transfer.add_argument("--receivers", default="2,4,8", help="one-to-many receiver counts")
    transfer.add_argument("--payload", type=int, default=32, help="one-to-many payload, MiB")
    transfer.add_argument("--cap", type=float, default=8.0, help="uplink cap B, MiB/s")
    transfer.add_argument("--exchange", type=int, default=45, metavar="MIB",
                          help="round-end exchange pattern, state size in MiB (0: skip)")
    transfer.add_argument("--resnet", action="store_true",
                          help="also time ResNet18 round-end exchange, 5 clients")
    transfer.set_defaults(handler=bench_commands.cmd_bench_transfer)
    placement = bench_sub.add_parser("placement", help="plan --auto's prediction vs measured "
                                     "splitnet local rounds (all-local, seed example, --auto), "
                                     "with slowed clients")
    placement.add_argument("--slowdown", default="1,1,8,8,1", metavar="K,K,...",
                           help="each client's slowdown (5 clients; default 1,1,8,8,1)")
    placement.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    placement.add_argument("--epochs", type=int, default=4, help="epochs a round (default 4)")
    placement.add_argument("--batch-size", type=int, default=128, help="BATCH_SIZE (default 128)")
    placement.add_argument("--budget", type=float, default=10.0, help="search seconds")
    placement.add_argument("--repeat", type=int, default=1,
                           help="runs of each placement, interleaved; the fastest counts")
    placement.add_argument("--depth", type=int, default=1,
                           help="PIPELINE_DEPTH of every run (default 1)")
    placement.add_argument("--out", type=Path, default=Path("results/bench-placement"))
    placement.set_defaults(handler=bench_commands.cmd_bench_placement)
    checkpoints = bench_sub.add_parser("checkpoints", help="samples/s with round checkpoints "
                                       "and without (CNN and ResNet18)")
    checkpoints.add_argument("--quick", action="store_true", help="CNN only, one pair of runs")
    checkpoints.add_argument("--pairs", type=int, default=2,
                             help="runs with and without per model (default 2)")
    checkpoints.add_argument("--out", type=Path, default=Path("results/bench-checkpoints"))
    checkpoints.set_defaults(handler=bench_commands.cmd_bench_checkpoints)
    reduce = bench_sub.add_parser("reduce", help="AGGREGATION=central vs reduce: the busiest "
                                  "client's bytes and the round time")
    reduce.add_argument("--owners", type=int, default=8, help="data owners (default 8)")
    reduce.add_argument("--model", default="CNN", help="CURRENT_MODEL (default CNN)")
    reduce.add_argument("--dataset", default="DIGITS", help="CURRENT_DATASET (default DIGITS)")
    reduce.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    reduce.add_argument("--rate", default=None, metavar="RATE",
                        help="cap every client's egress, e.g. 8mbit (root; splitnet local --wan)")
    reduce.add_argument("--bulk", default="grpc", choices=("auto", "torrent", "grpc"),
                        help="BULK_TRANSPORT (default grpc)")
    reduce.add_argument("--out", type=Path, default=Path("results/bench-reduce"))
    reduce.set_defaults(handler=bench_commands.cmd_bench_reduce)
    privacy = bench_sub.add_parser("privacy", help="each privacy mode's cost and leakage: "
                                   "none, secure aggregation, DP, both (CNN and ResNet18)")
    privacy.add_argument("--quick", action="store_true",
                         help="CNN only, small runs and attacks (about 2 minutes)")
    privacy.add_argument("--out", type=Path, default=Path("results/bench-privacy"))
    privacy.set_defaults(handler=bench_commands.cmd_bench_privacy)
    _add_attack(sub)
    return parser


def _add_attack(sub: argparse._SubParsersAction) -> None:
    attack = sub.add_parser("attack", help="measure what a helper learns across the cut: "
                            "'attack label-leak' (labels from gradients), 'attack invert' "
                            "(inputs from activations), without and with DP noise")
    kinds = attack.add_subparsers(dest="attack", required=True, parser_class=_Parser)
    for name, text in (("label-leak", "norm and cosine attacks on the gradients the owner "
                                      "sends back (digit 0 vs the rest); ROC AUC"),
                       ("invert", "a decoder from cut activations back to the 8x8 input; "
                                  "reconstruction MSE")):
        kind = kinds.add_parser(name, help=text)
        kind.add_argument("--quick", action="store_true", help="fewer epochs (seconds)")
        kind.add_argument("--seed", type=int, default=42, help="seed (default 42)")
        kind.add_argument("--sigmas", default=None, metavar="LIST",
                          help="noise multipliers, e.g. 0,0.5,1 (a row without protection "
                               "comes first)")
        kind.add_argument("--clip", type=float, default=None,
                          help="per-sample L2 clip (default 0.01 for label-leak, 10 for invert)")
        kind.add_argument("--out", type=Path, default=Path("results/attack"),
                          help="where <attack>.json and <attack>.md go (default results/attack)")
        kind.set_defaults(handler=bench_commands.cmd_attack)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
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
        print(f"splitnet {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(set SPLITNET_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
