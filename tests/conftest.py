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
