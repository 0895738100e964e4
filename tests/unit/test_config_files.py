"""Files an operator names (env file, CONFIG_FILE, token file): regular files only, bounded."""

import os
from pathlib import Path

import pytest

from splitnet.config import load, resolve_token
from splitnet.errors import ConfigError

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


@pytest.fixture(params=["device", "fifo"])
def special(request, tmp_path) -> tuple[Path, str]:
    """A file that stat calls 0 bytes: /dev/zero (endless) or a FIFO with no writer (blocks)."""
    if request.param == "device":
        return Path("/dev/zero"), "character device"
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path, r"FIFO \(named pipe\)"


def test_env_file_that_is_not_a_regular_file_is_refused(special):
    path, kind = special
    with pytest.raises(ConfigError, match=f"env file {path}: is a {kind}, not a regular file"):
        load(path, environ={}, env_file_required=True)


def test_config_file_that_is_not_a_regular_file_is_refused(special, write_env):
    path, kind = special
    with pytest.raises(ConfigError, match=f"CONFIG_FILE {path}: is a {kind}, not a regular"):
        load(write_env(CONFIG_FILE=str(path)), environ={})


def test_token_file_that_is_not_a_regular_file_is_refused(special, write_env):
    path, kind = special
    with pytest.raises(ConfigError, match=f"SPLITNET_TOKEN_FILE={path}: is a {kind}, not a"):
        load(write_env(SIMULATION_STAGES_CLIENTS=TWO, SPLITNET_TOKEN_FILE=str(path)), environ={})


def test_oversized_config_file_is_refused_by_a_bounded_read(tmp_path, write_env):
    (tmp_path / "big.json").write_bytes(b" " * (5 * 1024 * 1024))
    with pytest.raises(ConfigError, match="big.json: holds more than .* bytes; the limit is"):
        load(write_env(CONFIG_FILE="big.json"), environ={})


def test_a_placeholder_token_file_is_warned_about_and_used(tmp_path, write_env):
    (tmp_path / "token").write_text("change-me\n")
    settings = load(write_env(SIMULATION_STAGES_CLIENTS=TWO,
                              SPLITNET_TOKEN_FILE=str(tmp_path / "token")), environ={})
    assert resolve_token(settings) == "change-me"
    assert any(w.startswith("SPLITNET_TOKEN_FILE is the placeholder 'change-me'")
               for w in settings.warnings)


def test_dev_null_reads_as_an_empty_env_file():
    with pytest.raises(ConfigError, match="SIMULATION_STAGES_CLIENTS is not set"):
        load(Path(os.devnull), environ={}, env_file_required=True)
