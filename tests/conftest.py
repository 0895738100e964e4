"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "example_configurations"


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
