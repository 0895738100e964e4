"""A profile records its dataset; plan --auto refuses one of another; --wan names a setting."""

import json

import pytest

from splitnet.cli import main
from splitnet.config import load
from splitnet.errors import ConfigError
from splitnet.learning.profile import Profile
from splitnet.ops.autoplan import Overheads, costs_for
from splitnet.ops.wan import parse_links

TWO = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5","2_6","2_7","2_8"]]'
OLD = {"model": "CNN", "batch_size": 32, "threads": 1, "forward": [0.001] * 4,
       "backward": [0.002] * 4, "activation_bytes": [100] * 4, "model_bytes": 1000}


def test_a_profile_records_its_dataset_and_reads_it_back():
    profile = Profile.from_json({**OLD, "dataset": "DIGITS"})
    assert profile.dataset == "DIGITS"
    assert Profile.from_json(json.loads(json.dumps(profile.as_json()))) == profile


def test_an_old_profile_without_a_dataset_still_reads_and_is_used(write_env):
    profile = Profile.from_json(OLD)
    assert profile.dataset is None
    settings = load(write_env(SIMULATION_STAGES_CLIENTS=TWO, CURRENT_DATASET="SYNTHETIC"),
                    environ={})
    assert costs_for(settings, profile, Overheads()).forward == pytest.approx((0.001,) * 4)


def test_a_profile_dataset_that_is_not_a_name_is_refused():
    with pytest.raises(ValueError, match="dataset 7: expected a dataset name"):
        Profile.from_json({**OLD, "dataset": 7})


def test_plan_auto_refuses_a_profile_of_another_dataset(tmp_path, write_env, capsys,
                                                        monkeypatch):
    from splitnet.ops import autoplan

    monkeypatch.setattr(autoplan, "batches_per_round",
                        lambda *a: pytest.fail("read the data before checking the profile"))
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({**OLD, "dataset": "DIGITS"}))
    path = write_env(SIMULATION_STAGES_CLIENTS=TWO, CURRENT_DATASET="SYNTHETIC")
    assert main(["plan", "--auto", "--env-file", str(path), "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert ("the profile was measured on CURRENT_DATASET=DIGITS but this .env has "
            "CURRENT_DATASET=SYNTHETIC") in err and "Traceback" not in err


def test_costs_refuse_a_profile_of_another_dataset(write_env):
    settings = load(write_env(SIMULATION_STAGES_CLIENTS=TWO), environ={})
    with pytest.raises(ConfigError, match="measured on CURRENT_DATASET=MNIST"):
        costs_for(settings, Profile.from_json({**OLD, "dataset": "MNIST"}), Overheads())


@pytest.mark.parametrize("spec", ["0:", " ", "2:,", ""])
def test_a_wan_spec_naming_no_setting_is_refused(spec):
    with pytest.raises(ConfigError, match=f"--wan '{spec}': no setting; expected 'delay=10ms"):
        parse_links([spec], 3)


def test_a_wan_spec_with_a_trailing_comma_still_reads():
    assert parse_links(["1:delay=4ms,"], 2)[1].delay_ms == 4.0
