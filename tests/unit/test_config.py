import json

import pytest

from splitnet.config import load
from splitnet.errors import ConfigError
from splitnet.ops.prepare import prepare

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'


def test_settings_are_typed_and_defaults_fill_the_rest(write_env):
    s = load(write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="16",
                                LEARNING_RATE="0.1", OPTIMIZER="adam"), environ={})
    t = s.training
    assert (t.num_clients, t.batch_size, t.learning_rate, t.optimizer) == (2, 16, 0.1, "ADAM")
    assert t.stages_clients[1][0] == "2_1"
    assert t.num_partitions == 4 and t.model == "CNN"


def test_environment_wins_over_the_env_file(write_env):
    s = load(write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="16"),
                      environ={"BATCH_SIZE": "64", "UNRELATED": "x"})
    assert s.training.batch_size == 64


def test_python_literal_and_alias_are_accepted(write_env):
    literal = TWO.replace('"', "'")
    s = load(write_env(STAGES_CLIENTS=literal), environ={})
    assert s.training.stages_clients == tuple(tuple(x) for x in json.loads(TWO))


def test_every_bad_value_is_reported_at_once(write_env):
    with pytest.raises(ConfigError) as info:
        load(write_env(SIMULATION_STAGES_CLIENTS=TWO, BATCH_SIZE="abc",
                                LEARNING_RATE="-1", OPTIMIZER="rmsprop", SEED="x",
                                UPLOAD_BANDWIDTH="fast", SERVER_NUMBER="9"), environ={})
    text = str(info.value)
    for expected in ("BATCH_SIZE='abc'", "LEARNING_RATE='-1'", "OPTIMIZER='rmsprop': expected one of SGD, ADAM, ADAMW",
                     "SEED='x'", "UPLOAD_BANDWIDTH='fast'", "SERVER_NUMBER=9: expected a client number from 1 to NUM_CLIENTS=2"):
        assert expected in text
    assert len(info.value.violations) == 6


def test_misspelt_key_gets_a_suggestion(write_env):
    s = load(write_env(SIMULATION_STAGES_CLIENTS=TWO, OPTIMZER="adam"), environ={})
    assert any("OPTIMZER" in w and "did you mean OPTIMIZER" in w for w in s.warnings)


def test_a_key_set_twice_is_warned_of_with_the_value_used(tmp_path):
    env = tmp_path / "twice.env"
    env.write_text(f"SIMULATION_STAGES_CLIENTS={TWO}\nAGGREGATION=reduce\nSEED=3\n"
                   "AGGREGATION=central\n")
    s = load(env, environ={})
    assert s.training.aggregation == "central"
    assert [w for w in s.warnings if "AGGREGATION" in w] == [
        f"{env}: AGGREGATION is set on lines 2, 4; the file's last value ('central') counts"]
    assert not [w for w in s.warnings if "SEED" in w]
    env.write_text(f"SIMULATION_STAGES_CLIENTS={TWO}\nSEED=3\nSEED\n")
    s = load(env, environ={})
    assert s.training.seed == 42 and [w for w in s.warnings if "SEED" in w] == [
        f"{env}: SEED is set on lines 2, 3; the last line unsets it (the default counts)"]


def test_stage_lists_are_data_never_code(write_env, tmp_path):
    marker = tmp_path / "pwned"
    code = f'__import__("pathlib").Path("{marker}").touch()'
    with pytest.raises(ConfigError, match="only literals are allowed"):
        load(write_env(SIMULATION_STAGES_CLIENTS=code), environ={})
    assert not marker.exists()


def test_config_file_holds_the_lists_as_data(tmp_path, write_env):
    (tmp_path / "stages.py").write_text(f"# old style\nSIMULATION_STAGES_CLIENTS = {TWO}\n")
    s = load(write_env(CONFIG_FILE="stages.py"), environ={})
    assert len(s.training.stages_clients) == 2
    (tmp_path / "stages.json").write_text(json.dumps({"SIMULATION_STAGES_CLIENTS": json.loads(TWO)}))
    assert load(write_env(CONFIG_FILE="stages.json"), environ={}).training.num_clients == 2


def test_two_sources_of_lists_are_refused(tmp_path, write_env):
    (tmp_path / "stages.json").write_text(TWO)
    with pytest.raises(ConfigError, match="set only one source"):
        load(write_env(CONFIG_FILE="stages.json", SIMULATION_STAGES_CLIENTS=TWO), environ={})


def test_missing_config_file_is_named(write_env):
    with pytest.raises(ConfigError, match="CONFIG_FILE .*nothere.json: cannot read it"):
        load(write_env(CONFIG_FILE="nothere.json"), environ={})


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
        prepare(path, environ={}, env_file_required=True)


def test_huge_env_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.env"
    path.write_bytes(b"A=" + b"x" * (5 * 1024 * 1024))
    with pytest.raises(ConfigError, match="the limit is"):
        prepare(path, environ={}, env_file_required=True)


def test_dataset_must_fit_the_model():
    with pytest.raises(ConfigError, match="CURRENT_DATASET=DIGITS is image data but CURRENT_MODEL=BERT takes text"):
        load(values={"CURRENT_MODEL": "BERT", "SIMULATION_STAGES_CLIENTS": "[['1_1']]"})


def test_every_key_fills_one_attribute_of_its_group():
    from dataclasses import fields

    from splitnet.config.fields import FIELDS, GROUPS

    s = load(values={"SIMULATION_STAGES_CLIENTS": TWO})
    declared = {(f.group, f.attr) for f in FIELDS if f.group is not None}
    assert len(declared) == len([f for f in FIELDS if f.group is not None])
    for group in GROUPS:
        names = {f.name for f in fields(getattr(s, group))} - {"stages_clients"}
        assert names == {attr for g, attr in declared if g == group}, group
    for spec in FIELDS:
        if spec.group is not None and spec.default is not None:
            assert getattr(getattr(s, spec.group), spec.attr) == spec.default, spec.key


def test_settings_land_in_their_groups(write_env):
    s = load(write_env(SIMULATION_STAGES_CLIENTS=TWO, PEER_TIMEOUT="5", TORRENT_PORT="0",
                       NO_TC="yes", METRICS_PORT="0", DATA_DIR="/d", CLIENT_NUMBER="2"), environ={})
    assert (s.network.peer_timeout, s.network.client_number) == (5.0, 2)
    assert s.transport.torrent_port == 0 and s.shaping.no_tc is True
    assert s.output.metrics_port == 0 and s.data.data_dir == "/d"
    assert s.source.endswith("test.env")


def test_recovery_settings_default_and_parse(write_env):
    s = load(write_env(SIMULATION_STAGES_CLIENTS=TWO), environ={})
    r = s.recovery
    assert (r.checkpoint_dir, r.checkpoint_keep, r.resume, r.failure_policy, r.rejoin_timeout) \
        == ("./checkpoints", 2, "auto", "wait", 300.0)
    s = load(write_env(SIMULATION_STAGES_CLIENTS=TWO, CHECKPOINT_DIR="/c", CHECKPOINT_KEEP="5",
                       RESUME="Never", FAILURE_POLICY="ABORT", REJOIN_TIMEOUT="12.5"), environ={})
    r = s.recovery
    assert (r.checkpoint_dir, r.checkpoint_keep, r.resume, r.failure_policy, r.rejoin_timeout) \
        == ("/c", 5, "never", "abort", 12.5)


def test_bad_recovery_settings_are_named_together(write_env):
    with pytest.raises(ConfigError) as info:
        load(write_env(SIMULATION_STAGES_CLIENTS=TWO, CHECKPOINT_KEEP="-1", RESUME="yes",
                       FAILURE_POLICY="", REJOIN_TIMEOUT="0"), environ={})
    text = str(info.value)
    assert "CHECKPOINT_KEEP='-1': expected an integer from 0 to 1000000" in text
    assert "RESUME='yes': expected one of auto, never" in text
    assert "REJOIN_TIMEOUT='0': expected a number from 1 to 1e+07" in text
    assert len(info.value.violations) == 3  # an empty FAILURE_POLICY means the default


def test_given_values_are_validated_alone(write_env, monkeypatch):
    monkeypatch.setenv("BATCH_SIZE", "7")
    s = load(write_env(BATCH_SIZE="9"), values={"SIMULATION_STAGES_CLIENTS": TWO})
    assert s.training.batch_size == 32


def test_a_check_reports_together_with_the_settings_and_only_on_sound_lists():
    from splitnet.errors import Violation

    seen = []

    def check(training):
        seen.append(training.num_clients)
        return [Violation("coverage", "from the check")]

    with pytest.raises(ConfigError) as info:
        load(values={"SIMULATION_STAGES_CLIENTS": TWO, "SEED": "x"}, check=check)
    assert [v.rule for v in info.value.violations] == ["setting", "coverage"] and seen == [2]
    with pytest.raises(ConfigError) as info:
        load(values={"SIMULATION_STAGES_CLIENTS": TWO, "CURRENT_MODEL": "GPT"}, check=check)
    assert "from the check" not in str(info.value) and seen == [2]


def test_prepare_lists_a_bad_setting_and_a_bad_task_together(write_env):
    lists = json.loads(TWO)
    lists[0][2] = "2_3"
    with pytest.raises(ConfigError) as info:
        prepare(write_env(SIMULATION_STAGES_CLIENTS=json.dumps(lists), BATCH_SIZE="0"),
                environ={})
    rules = {v.rule for v in info.value.violations}
    assert {"setting", "coverage"} <= rules


def test_old_style_pairing_in_both_directions_loads(write_env):
    both = "{1: 8, 2: 7, 3: 6, 4: 5, 5: 4, 6: 3, 7: 2, 8: 1}"
    settings, plan = prepare(write_env(SIMULATION_STAGES_CLIENTS=TWO,
                                       FORWARD_BACKWARD_PAIR_STAGES=both), environ={})
    assert settings.training.pair_stages[8] == 1 and plan.num_partitions == 4


def test_an_old_config_module_may_assign_more_than_the_lists(tmp_path, write_env):
    lists = json.loads(TWO)
    (tmp_path / "config_stages_client.py").write_text(
        "STAGES_CLIENTS = [\n" + "".join(f"    {x},  # client {k}\n" for k, x in enumerate(lists, 1))
        + "]\n\nforward_backward_pair_stages = {\n    1: 8,  # forward 1 ↔ backward 8\n"
        "    2: 7, 3: 6, 4: 5, 5: 4, 6: 3, 7: 2, 8: 1}\n")
    s = load(write_env(CONFIG_FILE="config_stages_client.py"), environ={})
    assert s.training.stages_clients == tuple(tuple(x) for x in lists)


def test_the_old_readme_pairing_block_loads_from_an_env_file(write_env):
    block = ('"{\n    1: 8,  # forward stage 1 ↔ backward stage 8\n    2: 7,\n    3: 6,\n    4: 5,\n'
             '    5: 4,  # backward stage 5 ↔ forward stage 4\n    6: 3,\n    7: 2,\n    8: 1 } "')
    settings, _ = prepare(write_env(SIMULATION_STAGES_CLIENTS=TWO,
                                    FORWARD_BACKWARD_PAIR_STAGES=block), environ={})
    assert settings.training.pair_stages == {1: 8, 2: 7, 3: 6, 4: 5, 5: 4, 6: 3, 7: 2, 8: 1}


def test_network_options_default_torrent_threshold_is_the_settings_default(write_env):
    from splitnet.transport.network import NetworkOptions

    s = load(write_env(SIMULATION_STAGES_CLIENTS=TWO), environ={})
    default = NetworkOptions(me=1, addresses=["127.0.0.1:1"], token="t" * 16)
    assert default.torrent_min_bytes == int(s.transport.bulk_torrent_min_mib * 1024 * 1024)
