"""validate reads SPLITNET_TOKEN_FILE with everything else; DATA_DIR must be a folder."""

import pytest

from splitnet.cli import main
from splitnet.config import load
from splitnet.errors import ConfigError

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


def validate(path, capsys):
    code = main(["validate", "--env-file", str(path)])
    return code, capsys.readouterr().err


def test_a_token_file_error_is_listed_with_the_other_errors(tmp_path, write_env, capsys):
    missing = tmp_path / "no-such-token"
    code, err = validate(write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="x",
                                   SPLITNET_TOKEN_FILE=str(missing)), capsys)
    assert code == 2 and "2 configuration errors" in err
    assert f"SPLITNET_TOKEN_FILE={missing}: cannot read it" in err and "BATCH_SIZE='x'" in err


@pytest.mark.parametrize("content, message", [
    ("", "is empty; expected the cluster token"),
    ("  \n", "is empty; expected the cluster token"),
    ("short\n", "SPLITNET_TOKEN_FILE is 5 characters: the cluster token must be at least 16"),
])
def test_an_empty_or_short_token_file_is_refused_by_validate(tmp_path, write_env, capsys,
                                                             content, message):
    (tmp_path / "token").write_text(content)
    code, err = validate(write_env(SIMULATION_STAGES_CLIENTS=TWO, SEED="-1",
                                   SPLITNET_TOKEN_FILE=str(tmp_path / "token")), capsys)
    assert code == 2 and message in err and "SEED='-1'" in err


def test_validate_warns_of_the_placeholder_in_a_token_file(tmp_path, write_env, capsys):
    (tmp_path / "token").write_text("change-me\n")
    code, err = validate(write_env(SIMULATION_STAGES_CLIENTS=TWO,
                                   SPLITNET_TOKEN_FILE=str(tmp_path / "token")), capsys)
    assert code == 0 and "warning: SPLITNET_TOKEN_FILE is the placeholder 'change-me'" in err


def test_validate_warns_that_the_token_file_is_ignored_beside_a_token(tmp_path, write_env,
                                                                       capsys):
    token_file = tmp_path / "missing-is-fine-it-is-not-read"
    code, err = validate(write_env(SIMULATION_STAGES_CLIENTS=TWO, SPLITNET_TOKEN="a" * 32,
                                   SPLITNET_TOKEN_FILE=str(token_file)), capsys)
    assert code == 0
    assert (f"warning: SPLITNET_TOKEN_FILE={token_file} is ignored: SPLITNET_TOKEN is set too"
            in err)


def test_a_sound_token_file_passes_without_a_word(tmp_path, write_env, capsys):
    (tmp_path / "token").write_text("0123456789abcdef0123456789abcdef\n")
    code, err = validate(write_env(SIMULATION_STAGES_CLIENTS=TWO,
                                   SPLITNET_TOKEN_FILE=str(tmp_path / "token")), capsys)
    assert code == 0 and "SPLITNET_TOKEN" not in err


@pytest.mark.parametrize("sub", ["", "sub"])
def test_a_data_dir_that_is_a_file_is_refused(tmp_path, write_env, sub):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(ConfigError, match="DATA_DIR=.*expected a folder that exists or can be"):
        load(write_env(SIMULATION_STAGES_CLIENTS=TWO, DATA_DIR=str(tmp_path / "data" / sub)),
             environ={})


@pytest.mark.parametrize("sub", ["data", "new/data"])
def test_a_data_dir_that_is_or_can_be_a_folder_passes(tmp_path, write_env, sub):
    (tmp_path / "data").mkdir()
    path = str(tmp_path / sub)
    assert load(write_env(SIMULATION_STAGES_CLIENTS=TWO, DATA_DIR=path),
                environ={}).data.data_dir == path
