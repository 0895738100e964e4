import json

import pytest

from splitnet.config.settings import load_settings, settings_from_values
from splitnet.errors import ConfigError
from splitnet.plan.plan import load_plan

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


def test_settings_are_typed_and_defaults_fill_the_rest(write_env):
    s = load_settings(write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="16",
                                LEARNING_RATE="0.1", OPTIMIZER="adam"), environ={})
    assert (s.num_clients, s.batch_size, s.learning_rate, s.optimizer) == (2, 16, 0.1, "ADAM")
    assert s.stages_clients[1][0] == "2_1"
    assert s.num_partitions == 4 and s.model == "CNN"


def test_environment_wins_over_the_env_file(write_env):
    s = load_settings(write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="16"),
                      environ={"BATCH_SIZE": "64", "UNRELATED": "x"})
    assert s.batch_size == 64


def test_python_literal_and_alias_are_accepted(write_env):
    literal = TWO.replace('"', "'")
    s = load_settings(write_env(STAGES_CLIENTS=literal), environ={})
    assert s.stages_clients == tuple(tuple(x) for x in json.loads(TWO))


def test_every_bad_value_is_reported_at_once(write_env):
    with pytest.raises(ConfigError) as info:
        load_settings(write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="abc",
                                LEARNING_RATE="-1", OPTIMIZER="rmsprop", SEED="x",
                                UPLOAD_BANDWIDTH="fast", SERVER_NUMBER="9"), environ={})
    text = str(info.value)
    for expected in ("BATCH_SIZE='abc'", "LEARNING_RATE='-1'", "OPTIMIZER='rmsprop': expected one of SGD, ADAM, ADAMW",
                     "SEED='x'", "UPLOAD_BANDWIDTH='fast'", "SERVER_NUMBER=9: expected a client number from 1 to NUM_CLIENTS=2"):
        assert expected in text
    assert len(info.value.violations) == 6


def test_misspelt_key_gets_a_suggestion(write_env):
    s = load_settings(write_env(SIMULATION_STAGES_CLIENTS=TWO, OPTIMZER="adam"), environ={})
    assert any("OPTIMZER" in w and "did you mean OPTIMIZER" in w for w in s.warnings)


def test_stage_lists_are_data_never_code(write_env, tmp_path):
    marker = tmp_path / "pwned"
    code = f'__import__("pathlib").Path("{marker}").touch()'
    with pytest.raises(ConfigError, match="only literals are allowed"):
        load_settings(write_env(SIMULATION_STAGES_CLIENTS=code), environ={})
    assert not marker.exists()


def test_config_file_holds_the_lists_as_data(tmp_path, write_env):
    (tmp_path / "stages.py").write_text(f"# old style\nSIMULATION_STAGES_CLIENTS = {TWO}\n")
    s = load_settings(write_env(CONFIG_FILE="stages.py"), environ={})
    assert len(s.stages_clients) == 2
    (tmp_path / "stages.json").write_text(json.dumps({"SIMULATION_STAGES_CLIENTS": json.loads(TWO)}))
    assert load_settings(write_env(CONFIG_FILE="stages.json"), environ={}).num_clients == 2


def test_two_sources_of_lists_are_refused(tmp_path, write_env):
    (tmp_path / "stages.json").write_text(TWO)
    with pytest.raises(ConfigError, match="set only one source"):
        load_settings(write_env(CONFIG_FILE="stages.json", SIMULATION_STAGES_CLIENTS=TWO), environ={})


def test_missing_config_file_is_named(write_env):
    with pytest.raises(ConfigError, match="cannot read CONFIG_FILE .*nothere.json"):
        load_settings(write_env(CONFIG_FILE="nothere.json"), environ={})


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (b"A=1\x00\n", "NUL bytes"),
    (b"SIMULATION_STAGES_CLIENTS=" + b"[" * 200_000, "not valid JSON or a Python literal"),
    (b"SIMULATION_STAGES_CLIENTS=[['1_1'", "not valid JSON or a Python literal"),
    (b"", "SIMULATION_STAGES_CLIENTS is not set"),
    (b"SIMULATION_STAGES_CLIENTS={'1_1': 2}", "is a dict; expected a list"),
    (b"SIMULATION_STAGES_CLIENTS=[[1, 2]]", "item 1 of client 1's list is '1' (int)"),
    (b"SIMULATION_STAGES_CLIENTS=['1_1']", "client 1's entry is"),
    (b'SIMULATION_STAGES_CLIENTS="[[\'1_1\']', "cannot parse"),
])
def test_bad_env_files_get_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.env"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_plan(path, environ={}, env_file_required=True)


def test_huge_env_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.env"
    path.write_bytes(b"A=" + b"x" * (5 * 1024 * 1024))
    with pytest.raises(ConfigError, match="the limit is"):
        load_plan(path, environ={}, env_file_required=True)


def test_dataset_must_fit_the_model():
    with pytest.raises(ConfigError, match="CURRENT_DATASET=DIGITS is image data but CURRENT_MODEL=BERT takes text"):
        settings_from_values({"CURRENT_MODEL": "BERT", "SIMULATION_STAGES_CLIENTS": "[['1_1']]"})
