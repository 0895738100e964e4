"""``splitnet report [RESULTS_DIR]``: PNG figures and a short markdown summary of a run.

Given ``RESULTS_DIR`` it reports on the ``latest`` run; given a run folder
(``RESULTS_DIR/runs/<run id>``), on that run. The report goes into the run's ``report/``.

Figures: accuracy / macro F1 / loss per round (with the baseline's curves when
``RESULTS_DIR/baseline`` exists or ``--baseline`` names one), a Gantt timeline of task execution
per client coloured by owner, compute vs transfer time per client, and bytes per link as a
heatmap (from ``timeline.csv``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from splitnet.errors import ConfigError, Violation
from splitnet.telemetry.report_input import (
    MetricsPoint,
    Span,
    read_metrics,
    read_summary,
    read_timeline,
)
from splitnet.telemetry.runs import baseline_of, run_folder_of

__all__ = ["write_report"]


def _metrics_figure(metrics: list[MetricsPoint], baseline: list[MetricsPoint] | None,
                    target: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    rounds = [r.round for r in metrics]
    for key, label in (("test_accuracy", "test accuracy"), ("f1_macro", "macro F1")):
        left.plot(rounds, [getattr(r, key) for r in metrics], marker="o",
                  label=f"split: {label}")
        if baseline:
            left.plot([r.round for r in baseline], [getattr(r, key) for r in baseline],
                      linestyle="--", label=f"baseline: {label}")
    left.set(xlabel="round", ylabel="score", title="Accuracy and macro F1 per round",
             ylim=(0, 1.02))
    left.legend(loc="lower right")
    for key, label in (("train_loss", "train loss"), ("test_loss", "test loss")):
        right.plot(rounds, [getattr(r, key) for r in metrics], marker="o",
                   label=f"split: {label}")
        if baseline:
            right.plot([r.round for r in baseline], [getattr(r, key) for r in baseline],
                       linestyle="--", label=f"baseline: {label}")
    right.set(xlabel="round", ylabel="cross-entropy", title="Loss per round")
    right.legend(loc="upper right")
    fig.savefig(target, dpi=110)
    plt.close(fig)


def _gantt_figure(timeline: list[Span], target: Path) -> None:
    origin = min(r.start for r in timeline)
    clients = sorted({r.client for r in timeline})
    owners = sorted({r.owner for r in timeline})
    colours = {o: plt.get_cmap("tab10")(i % 10) for i, o in enumerate(owners)}
    fig, ax = plt.subplots(figsize=(12, 1.6 + 0.6 * len(clients)), constrained_layout=True)
    for row in timeline:
        start, end = row.start - origin, row.end - origin
        y = clients.index(row.client)
        transfer = row.kind == "transfer"
        ax.barh(y + (0.25 if transfer else 0), max(end - start, 1e-4),
                left=start, height=0.3 if transfer else 0.5,
                color=colours[row.owner], alpha=0.45 if transfer else 0.95)
    ax.set_yticks(range(len(clients)), [f"client {c}" for c in clients])
    ax.set(xlabel="seconds since the first task", title="Task timeline per client "
           "(colour = owner; thin bars = transfers)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[o]) for o in owners]
    ax.legend(handles, [f"owner {o}" for o in owners], loc="upper center",
              bbox_to_anchor=(0.5, -0.25), ncols=min(8, len(owners)), frameon=False)
    fig.savefig(target, dpi=110)
    plt.close(fig)


def _compute_transfer_figure(timeline: list[Span], target: Path) -> dict[str, Any]:
    seconds: dict[int, dict[str, float]] = defaultdict(lambda: {"compute": 0.0, "transfer": 0.0})
    for row in timeline:
        seconds[row.client][row.kind] += row.end - row.start
    clients = sorted(seconds)
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    compute = [seconds[c]["compute"] for c in clients]
    transfer = [seconds[c]["transfer"] for c in clients]
    ax.bar([str(c) for c in clients], compute, label="compute")
    ax.bar([str(c) for c in clients], transfer, bottom=compute, label="transfer")
    ax.set(xlabel="client", ylabel="seconds", title="Compute vs transfer time per client")
    ax.legend()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return {str(c): seconds[c] for c in clients}


def _links_figure(timeline: list[Span], target: Path) -> dict[str, int]:
    links: dict[tuple[int, int], int] = defaultdict(int)
    for row in timeline:
        if row.kind == "transfer" and row.peer is not None:
            links[(row.client, row.peer)] += row.nbytes
    clients = sorted({c for link in links for c in link} or {1})
    grid = [[links.get((a, b), 0) / 1e6 for b in clients] for a in clients]
    fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
    image = ax.imshow(grid, cmap="viridis")
    ax.set_xticks(range(len(clients)), [str(c) for c in clients])
    ax.set_yticks(range(len(clients)), [str(c) for c in clients])
    ax.set(xlabel="to client", ylabel="from client",
           title="Activation and gradient bytes per link (MB)")
    top = max(max(row) for row in grid) or 1.0
    for i in range(len(clients)):
        for j in range(len(clients)):
            if grid[i][j]:
                ax.text(j, i, f"{grid[i][j]:.1f}", ha="center", va="center",
                        color="black" if grid[i][j] > top / 2 else "white")
    fig.colorbar(image, ax=ax, label="MB")
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return {f"{a}->{b}": n for (a, b), n in sorted(links.items())}


def write_report(given: Path, baseline: Path | None = None) -> Path:
    """Write the run's ``report/`` (PNGs and report.md); return the markdown path.

    ``given`` is ``RESULTS_DIR`` (its ``latest`` run) or a run folder.
    """
    results = run_folder_of(given)
    metrics_path, timeline_path = results / "metrics.csv", results / "timeline.csv"
    missing = [p for p in (metrics_path, timeline_path) if not p.exists()]
    if missing:
        raise ConfigError(Violation("report", f"{', '.join(map(str, missing))} not found: "
                                              "run `splitnet local` (or the containers) first"))
    if baseline is not None and not (baseline / "metrics.csv").is_file():
        raise ConfigError(Violation("usage", f"--baseline {baseline}: no metrics.csv in it; "
                                             "expected the folder `splitnet baseline` writes "
                                             "(RESULTS_DIR/baseline)"), "the command line")
    baseline = baseline or baseline_of(given)
    if baseline is not None and not (baseline / "metrics.csv").is_file():
        raise ConfigError(Violation("results", f"{baseline} holds no metrics.csv (a baseline "
                                               "that did not finish a round?): run `splitnet "
                                               "baseline` again, or remove the folder"))
    base_rows = read_metrics(baseline / "metrics.csv") if baseline else None
    metrics, timeline = read_metrics(metrics_path), read_timeline(timeline_path)
    summary = read_summary(results / "summary.json")
    if not metrics or not timeline:
        raise ConfigError(Violation("report", f"{results} has no rounds or no tasks yet"))
    out = results / "report"
    out.mkdir(exist_ok=True)
    _metrics_figure(metrics, base_rows, out / "metrics.png")
    _gantt_figure(timeline, out / "timeline.png")
    split = _compute_transfer_figure(timeline, out / "compute_transfer.png")
    links = _links_figure(timeline, out / "links.png")
    last, clients = metrics[-1], summary.get("clients", "?")
    lines = [
        "# splitnet report", "",
        f"{summary.get('model', '?')} on {summary.get('dataset', '?')}, "
        f"{clients} client{'' if clients == 1 else 's'}, {len(metrics)} "
        f"round{'' if len(metrics) == 1 else 's'}.", "",
        f"- final test accuracy {last.test_accuracy:.4f}, macro F1 "
        f"{last.f1_macro:.4f}, test loss {last.test_loss:.4f}",
    ]
    if base_rows:
        best = base_rows[-1]
        lines.append(f"- baseline (centralized): accuracy {best.test_accuracy:.4f}, "
                     f"macro F1 {best.f1_macro:.4f}")
    lines += [f"- client {c}: {v['compute']:.2f} s compute, {v['transfer']:.2f} s transfer"
              for c, v in split.items()]
    lines += ["", "![metrics](metrics.png)", "", "![timeline](timeline.png)", "",
              "![compute vs transfer](compute_transfer.png)", "", "![links](links.png)", ""]
    if links:
        lines += ["| link | bytes |", "|---|---|"] + [f"| {k} | {v} |" for k, v in links.items()]
    target = out / "report.md"
    target.write_text("\n".join(lines) + "\n")
    return target
