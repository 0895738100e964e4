"""``splitnet attack``: the label-leak and inversion attacks at the cut, seeded, quick sizes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from splitnet.bench.attack_options import attack_options
from splitnet.bench.attacks import attack_table, json_safe, run_attack
from splitnet.bench.label_leak import leak_scores
from splitnet.bench.split_training import CutHooks, cut_settings, train_split
from splitnet.cli import main
from splitnet.errors import ConfigError
from splitnet.learning.batches import epoch_batches
from splitnet.learning.data import load_dataset
from splitnet.learning.models import build_partitions, compose
from splitnet.learning.optim import make_optimizer

from ..conftest import settings_of


def _run_cli(tmp_path_factory, attack: str, sigmas: str) -> dict:
    out = tmp_path_factory.mktemp(attack)
    code = main(["attack", attack, "--quick", "--seed", "3", "--sigmas", sigmas,
                 "--out", str(out)])
    assert code == 0
    assert (out / f"{attack}.md").read_text().startswith(f"{attack}: clip")
    report = json.loads((out / f"{attack}.json").read_text())
    assert report["attack"] == attack and report["seed"] == 3
    return {("none" if r["sigma"] is None else r["sigma"]): r for r in report["rows"]}


@pytest.fixture(scope="module")
def leak(tmp_path_factory):
    return _run_cli(tmp_path_factory, "label-leak", "0,2")


@pytest.fixture(scope="module")
def inversion(tmp_path_factory):
    return _run_cli(tmp_path_factory, "invert", "0,1")


def test_label_leak_reads_the_labels_from_unprotected_gradients(leak):
    assert list(leak) == ["none", 0.0, 2.0]
    assert leak["none"]["auc"] >= 0.9 and leak[0.0]["auc"] >= 0.9
    assert leak["none"]["auc"] == max(leak["none"]["auc_norm"], leak["none"]["auc_cosine"])
    assert len(leak["none"]["auc_by_epoch"]) == 5 and leak["none"]["auc_by_epoch"][-1] == \
        leak["none"]["auc"]
    assert min(leak["none"]["auc_by_epoch"]) >= 0.7  # it leaks all along, not only at the end
    # the attacked model is a trained one: digit 0 is found (not the all-negative 90 %)
    assert leak["none"]["test_accuracy"] >= 0.95 and leak["none"]["test_f1"] >= 0.85


def test_gradient_noise_drives_the_label_leak_auc_toward_a_coin_toss(leak):
    assert leak[2.0]["auc"] < leak[0.0]["auc"] - 0.3
    assert abs(leak[2.0]["auc"] - 0.5) < 0.1
    assert leak["none"]["epsilon"] is None and leak[0.0]["epsilon"] is None
    assert 0 < leak[2.0]["epsilon"] < 20


def test_inversion_rebuilds_inputs_unless_activations_are_noised(inversion):
    assert list(inversion) == ["none", 0.0, 1.0]
    mean_image = inversion["none"]["mse_mean_image"]
    assert inversion["none"]["mse"] < 0.25 * mean_image
    assert inversion[0.0]["mse"] < 0.25 * mean_image  # clipping alone hides nothing
    assert inversion[1.0]["mse"] > inversion[0.0]["mse"] + 0.1
    assert inversion[1.0]["mse"] > 0.8 * mean_image  # no better than the mean image
    assert inversion["none"]["test_accuracy"] >= 0.8


def test_bad_attack_options_are_named_with_exit_code_2(tmp_path, capsys):
    code = main(["attack", "invert", "--sigmas", "0,-1,x", "--clip", "0", "--seed", "-1",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    for option in ("--sigmas '0,-1,x'", "--clip 0", "--seed -1"):
        assert option in err
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="listed twice"):
        attack_options("label-leak", tmp_path, sigmas="1,1")
    with pytest.raises(ConfigError, match="attack 'steal'"):
        attack_options("steal", tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["attack", "steal"])
    assert exit_.value.code == 2


def test_leak_scores_separate_signed_gradients_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    labels = (torch.arange(200) % 10 == 0).long()
    direction = torch.randn(16, generator=generator)
    signed = torch.where(labels[:, None] == 1, 3.0, -1.0) * direction
    scores = leak_scores(signed + 0.01 * torch.randn(200, 16, generator=generator), labels)
    assert scores["auc_norm"] == 1.0 and scores["auc_cosine"] == 1.0
    noise = leak_scores(torch.randn(200, 16, generator=generator), labels)
    assert abs(noise["auc"] - 0.5) < 0.2
    assert math.isnan(leak_scores(torch.full((200, 16), math.nan), labels)["auc"])
    with pytest.raises(ValueError, match="both classes"):
        leak_scores(torch.ones(10, 16), torch.zeros(10, dtype=torch.long))


def test_a_diverged_row_reads_diverged(tmp_path):
    opts = attack_options("label-leak", tmp_path, sigmas="1", quick=True)
    row = {"sigma": 1.0, "epsilon": 3.0, "auc": math.nan, "auc_norm": math.nan,
           "auc_cosine": math.nan, "test_accuracy": 0.9, "test_f1": 0.5}
    assert "| clip + noise | 1 | 3.000 | diverged | diverged | diverged | 0.900 |" in \
        attack_table(opts, [row])
    assert json_safe([{**row, "auc_by_epoch": [0.7, math.nan]}])[0]["auc_by_epoch"] == [0.7, None]


def test_run_attack_restores_the_thread_count(tmp_path):
    threads = torch.get_num_threads()
    run_attack(attack_options("invert", tmp_path, sigmas="0", quick=True))
    assert torch.get_num_threads() == threads


def test_the_cut_is_owner_and_helper_envs_placement():
    example = settings_of("owner_and_helper.env").training
    assert cut_settings(42).training.stages_clients == example.stages_clients


def test_training_across_the_cut_without_hooks_is_plain_training():
    settings = cut_settings(5)
    t = settings.training
    dataset = load_dataset(t, settings.data)
    x, y = dataset.train_x[:200], dataset.train_y[:200]
    split = build_partitions("CNN", dataset.spec, 5)
    train_split(split, x, y, settings, 2, CutHooks())
    whole = compose(build_partitions("CNN", dataset.spec, 5))
    optimizer = make_optimizer(t.optimizer, whole.parameters(), t.learning_rate)
    generator = torch.Generator().manual_seed(t.seed)
    for _ in range(2):
        for index in epoch_batches(len(y), t.batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(whole(x[index]), y[index]).backward()
            optimizer.step()
    for a, b in zip(compose(split).parameters(), whole.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
