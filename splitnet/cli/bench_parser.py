"""The ``splitnet bench`` and ``splitnet attack`` parsers, and the check of bench's own options."""

from __future__ import annotations

import argparse
from pathlib import Path

from splitnet.cli import bench_commands
from splitnet.cli.commands import usage
from splitnet.config import catalog

__all__ = ["add_bench", "check_bench_options_ahead"]


def add_bench(sub: argparse._SubParsersAction,
              parser_class: type[argparse.ArgumentParser]) -> None:
    """Add ``bench`` with its subcommands, and ``attack``, to ``sub``."""
    bench = sub.add_parser(
        "bench", help="split training vs centralized PyTorch and torch pipelining, one run "
        "(ratios against the same run's centralized baseline); 'bench transfer': transports",
        epilog="The options above are the bench run's own; a subcommand takes its options after "
               "its name (e.g. splitnet bench placement -h).")
    bench.add_argument("--quick", action="store_true",
                       help="a smoke run: 3 clients, 2 rounds x 1 epoch (unless given)")
    _add_model_dataset(bench)
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
    bench_sub = bench.add_subparsers(dest="bench", required=False, parser_class=parser_class)
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
    placement.add_argument("--rounds", type=int, default=3,
                           help="rounds, at least 2: the first warms up (default 3)")
    placement.add_argument("--model", type=str.lower, choices=("cnn", "bert"), default="cnn",
                           help="cnn: CNN on DIGITS (default); bert: BERT tiny on SYNTHETIC "
                           "text (light endpoints, heavy encoder layers)")
    placement.add_argument("--epochs", type=int, default=None,
                           help="epochs a round (default 4)")
    placement.add_argument("--batch-size", type=int, default=None,
                           help="BATCH_SIZE (default 128 for cnn, 32 for bert)")
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
    _add_model_dataset(reduce)
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
    _add_attack(sub, parser_class)


def _add_model_dataset(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--dataset`` as the configuration names them, in any case."""
    models, datasets = catalog.model_names(), sorted(catalog.DATASET_KINDS)
    parser.add_argument("--model", type=str.upper, choices=models, default="CNN", metavar="M",
                        help=f"CURRENT_MODEL, any case: {', '.join(models)} (default CNN)")
    parser.add_argument("--dataset", type=str.upper, choices=datasets, default="DIGITS",
                        metavar="D", help=f"CURRENT_DATASET, any case: {', '.join(datasets)} "
                                          "(default DIGITS)")


def _add_attack(sub: argparse._SubParsersAction,
                parser_class: type[argparse.ArgumentParser]) -> None:
    attack = sub.add_parser("attack", help="measure what a helper learns across the cut: "
                            "'attack label-leak' (labels from gradients), 'attack invert' "
                            "(inputs from activations), without and with DP noise")
    kinds = attack.add_subparsers(dest="attack", required=True, parser_class=parser_class)
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


def check_bench_options_ahead(args: argparse.Namespace, words: list[str]) -> None:
    """Refuse ``splitnet bench``'s own options given before a bench subcommand.

    Note: bench options ahead. argparse hands a subcommand a namespace of its own defaults, which
    overwrite the same names given to ``bench`` (``bench --rounds 5 placement`` ran 3 rounds),
    and the subcommand never reads the others. Every word between ``bench`` and the subcommand
    is such an option (the top level has none but ``-h``), so any word there is refused.
    """
    if args.command != "bench" or args.bench is None or args.bench not in words[1:]:
        return
    ahead = words[1:words.index(args.bench, 1)]
    if ahead:
        flags = ", ".join(w.split("=")[0] for w in ahead if w.startswith("-"))
        raise usage(f"{flags} before '{args.bench}': bench options before a subcommand do "
                    f"not reach it; put them after the subcommand, e.g. splitnet bench "
                    f"{args.bench} {' '.join(ahead)} (see splitnet bench {args.bench} -h)")
