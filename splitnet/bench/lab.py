"""``splitnet bench --lab``: the offload case as a Swarm stack across the lab's nodes.

The lab is ``scripts/swarm-lab.sh up`` (one dockerd a node, each in its own network namespace,
an overlay network across them). After the loopback bench, the same ``offload.env`` is deployed
as ``docker-compose-swarm.yml`` (client K on node K, TLS from Docker secrets) and its row --
samples/s and mean round time from the run's own ``summary.json`` and ``metrics.csv`` -- is put
beside the loopback offload row, with the ratio lab ÷ loopback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from splitnet.errors import RuntimeFailure
from splitnet.ops.lab import deployed, node_socket, read_results, wait_complete
from splitnet.telemetry.runs import run_folder_of

__all__ = ["lab_image", "lab_row", "lab_table", "loopback_round"]

LAB_SETTINGS = ["JOIN_TIMEOUT=180", "PEER_TIMEOUT=60"]
"""Added to the offload settings on the lab: clients start slower there (a 2-core machine)."""


def lab_image(manager: Any) -> str:
    """Return the image the stack runs: ``SPLITNET_IMAGE``, else the lab's ``splitnet:`` image."""
    if image := os.environ.get("SPLITNET_IMAGE"):
        return image
    tags = sorted(t for i in manager.images.list() for t in i.tags if t.startswith("splitnet:"))
    if not tags:
        raise RuntimeFailure("--lab: node 1 has no splitnet: image; bring the lab up with "
                           "`scripts/swarm-lab.sh up --image IMAGE` or set SPLITNET_IMAGE")
    return "splitnet:local" if "splitnet:local" in tags else tags[0]


def _mean_round(metrics: str) -> float:
    rows = list(csv.DictReader(io.StringIO(metrics)))
    return sum(float(r["round_seconds"]) for r in rows) / len(rows)


def lab_row(env_file: Path, clients: int, progress: Callable[[str], Any] = print,
            timeout: float = 900) -> dict[str, Any]:
    """Run ``env_file`` as a stack on the lab; return its row (samples/s, mean round, times)."""
    import docker

    manager = docker.DockerClient(base_url=node_socket(1))
    try:
        image = lab_image(manager)
        text = env_file.read_text() + "\n".join(LAB_SETTINGS) + "\n"
        with tempfile.TemporaryDirectory(prefix="splitnet-lab-bench-") as folder:
            progress(f"bench: splitnet offload on the Swarm lab ({clients} nodes, {image}) ...")
            with deployed(manager, Path(folder), text, clients, image) as (stack, at):
                wait_complete(manager, stack, clients, timeout)
                seconds = time.time() - at
                files = read_results(1, f"{stack}_results1", image)
    finally:
        manager.close()
    summary = json.loads(files["summary.json"])
    return {"system": f"splitnet offload, Swarm lab ({clients} nodes)",
            "samples_per_second": float(summary["samples_per_second"]),
            "round_seconds": _mean_round(files["metrics.csv"].decode()),
            "test_accuracy": float(summary["test_accuracy"]), "deploy_to_done_s": seconds,
            "image": image}


def loopback_round(out: Path) -> tuple[float, float]:
    """Return the loopback offload run's mean round seconds and test accuracy.

    The run is the bench's under ``out``; the accuracy is its own ``summary.json``'s, as the lab
    row's is.
    """
    folder = run_folder_of(out / "splitnet-offload")
    summary = json.loads((folder / "summary.json").read_text())
    return _mean_round((folder / "metrics.csv").read_text()), float(summary["test_accuracy"])


def lab_table(loopback: dict[str, Any], loopback_run: tuple[float, float],
              lab: dict[str, Any]) -> str:
    """Return the two offload rows (loopback, lab) and the ratios lab ÷ loopback, as markdown.

    ``loopback_run`` is :func:`loopback_round`'s (mean round, the run's own test accuracy).
    """
    loopback_round_s, accuracy = loopback_run
    lines = ["| offload case | samples/s | mean round (s) | test accuracy (run's summary) |",
             "|---|---|---|---|"]
    for name, row, rnd, acc in (
            ("loopback (one machine, `splitnet local`)", loopback, loopback_round_s, accuracy),
            (lab["system"], lab, lab["round_seconds"], lab["test_accuracy"])):
        lines.append(f"| {name} | {row['samples_per_second']:.1f} | {rnd:.2f} | {acc:.4f} |")
    lines.append(f"\nlab ÷ loopback: samples/s "
                 f"{lab['samples_per_second'] / loopback['samples_per_second']:.2f}, round time "
                 f"{lab['round_seconds'] / loopback_round_s:.2f} (deploy to done "
                 f"{lab['deploy_to_done_s']:.0f} s)")
    return "\n".join(lines)
