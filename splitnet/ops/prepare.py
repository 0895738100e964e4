"""Settings and plan together, from one env file: what every command that trains starts with."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from splitnet.config import Settings, load
from splitnet.plan.plan import Plan, build_plan, plan_violations

__all__ = ["prepare"]


def prepare(
    env_file: Path | None = Path(".env"),
    environ: Mapping[str, str] | None = None,
    *,
    env_file_required: bool = False,
    values: Mapping[str, str] | None = None,
) -> tuple[Settings, Plan]:
    """Load settings and build the plan; settings and placement errors are raised together."""
    settings = load(env_file, environ, env_file_required=env_file_required, values=values,
                    check=plan_violations)
    return settings, build_plan(settings.training)
