"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitnet.config import Settings, load
from splitnet.plan.plan import Plan, build_plan

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "example_configurations"


def settings_of(name: str | None = None, **values: str) -> Settings:
    """Settings from an example configuration (or none) with ``values`` on top; no environment."""
    if name:  # the file's directory resolves CONFIG_FILE; values win, as the environment does
        return load(EXAMPLES / name, environ=values, env_file_required=True)
    return load(values=values)


def plan_of(name: str | None = None, **values: str) -> Plan:
    """The plan of :func:`settings_of`."""
    return build_plan(settings_of(name, **values).training)


@pytest.fixture
def write_env(tmp_path: Path):
    """Write an env file from keyword values and return its path."""

    def write(text: str = "", **values: str) -> Path:
        path = tmp_path / "test.env"
        lines = [text] + [f"{key}={value}" for key, value in values.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


_LAYER_MARKS = {"integration": pytest.mark.integration, "containers": pytest.mark.container}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by its folder: tests/integration → integration, tests/containers → container."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in _LAYER_MARKS:
            item.add_marker(_LAYER_MARKS[folder])
