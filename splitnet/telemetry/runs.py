"""Run folders: each run owns ``RESULTS_DIR/runs/<run id>/``; ``RESULTS_DIR/latest`` points at one.

Note: a run owns its folder. A run's result files go only into its own folder, so a second run
in the same ``RESULTS_DIR`` (killed midway or not) never changes a finished one. The aggregator
makes the run id at start (or takes ``RUN_ID``), points ``latest`` at its folder (a temporary
symlink moved over the old one with ``os.replace``, so a reader sees the old or the new run,
never none) and announces the id when peers join; the other clients open the folder only then.
Readers (``report``, ``local``, bench) given ``RESULTS_DIR`` read ``latest``; given a run folder
they read it.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from splitnet.config.parsing import run_id as parse_run_id
from splitnet.config.parsing import show
from splitnet.errors import ConfigError, Violation

__all__ = ["LATEST", "LOCAL_CA", "RUNS", "SUMMARY", "baseline_of", "began", "check_unfinished",
           "new_run_id", "point_latest", "run_folder", "run_folder_of"]

RUNS = "runs"
LATEST = "latest"
SUMMARY = "summary.json"
LOCAL_CA = "certs"
"""Where ``splitnet local`` writes its run's CA, in the run's folder, before any client starts."""


def new_run_id() -> str:
    """Return a fresh run id: UTC time and random hex digits (``20261123T211500Z-3fa2``)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def run_folder(results_dir: Path, run_id: str) -> Path:
    """Return the folder of run ``run_id`` (validated) under ``results_dir``."""
    return results_dir / RUNS / parse_run_id(run_id)


def check_unfinished(results_dir: Path, run_id: str) -> None:
    """Raise ConfigError if ``run_id`` names a run that has finished already (its summary)."""
    folder = run_folder(results_dir, run_id)
    if (folder / SUMMARY).exists():
        raise ConfigError(Violation(
            "RUN_ID", f"{show(run_id)} names a finished run ({folder} holds its {SUMMARY}); "
            "choose another RUN_ID, or leave it unset for a fresh one"))


def began(folder: Path) -> bool:
    """Return whether a run's clients wrote into ``folder`` (not only ``splitnet local``'s CA)."""
    return folder.is_dir() and any(path.name != LOCAL_CA for path in folder.iterdir())


def point_latest(results_dir: Path, run_id: str) -> Path:
    """Point ``results_dir/latest`` at ``runs/<run_id>`` (relative), atomically; return it."""
    latest = results_dir / LATEST
    temporary = results_dir / f".{LATEST}-{run_id}.tmp"
    if temporary.is_symlink():
        temporary.unlink()
    os.symlink(Path(RUNS) / run_id, temporary)
    try:
        os.replace(temporary, latest)
    except OSError as exc:
        temporary.unlink()
        raise ConfigError(Violation(
            "RESULTS_DIR", f"cannot point {latest} at {RUNS}/{run_id}: {exc.strerror} "
            f"(move {latest} away; it is the link to the newest run)")) from None
    return latest


def run_folder_of(path: Path) -> Path:
    """Return the run folder a reader should read for ``path``.

    ``path`` is a ``RESULTS_DIR`` whose ``latest`` names a run (read first: results of an older
    version at its top are not read), or a run folder (it holds ``metrics.csv`` or
    ``summary.json``). Raises ConfigError naming ``path`` otherwise.
    """
    latest = path / LATEST
    if latest.is_dir():
        return path / os.readlink(latest) if latest.is_symlink() else latest
    if (path / "metrics.csv").exists() or (path / SUMMARY).exists():
        return path
    raise ConfigError(Violation(
        "results", f"{path} is neither a run folder (metrics.csv, {SUMMARY}) nor a results "
        f"folder with a {LATEST} run ({latest} is missing): run `splitnet local` (or the "
        "containers) first"))


def baseline_of(given: Path) -> Path | None:
    """Return ``RESULTS_DIR/baseline`` if it exists; ``given`` is RESULTS_DIR or a run folder."""
    run = run_folder_of(given)
    root = given.parent.parent if run == given and given.parent.name == RUNS else given
    return root / "baseline" if (root / "baseline").is_dir() else None
