"""``plan --generate`` refuses requests it would silently bend (splitnet/plan/generate.py)."""

import json

import pytest

from splitnet.cli import main

BASE = ["plan", "--generate", "--clients", "3", "--model", "CNN"]


@pytest.mark.parametrize("args, message", [
    ([*BASE, "--offload", "1:2=2", "--offload", "1:2-3=3"],
     "--offload '1:2-3=3' names owner 1's partition 2 again (to client 2 before): each "
     "partition may be moved once"),
    ([*BASE, "--offload", "1:2=2", "--offload", "1:2=3"], "names owner 1's partition 2 again"),
    ([*BASE, "--owners", "1,1"], "--owners '1,1': expected client numbers separated by commas, "
                                 "each once, e.g. 1,2,3 (names 1 more than once)"),
    ([*BASE, "--owners", ""], "--owners '': expected client numbers separated by commas"),
    ([*BASE, "--owners", "1,,2"], "--owners '1,,2': expected client numbers"),
    ([*BASE, "--owners", "1_2"], "--owners '1_2': expected client numbers"),
    ([*BASE, "--bert-model", "mini"], "--bert-model mini with --model CNN: it sizes --model BERT "
                                      "only"),
    (["plan", "--generate", "--clients", "3", "--partitions", "4", "--bert-model", "mini"],
     "--bert-model mini with no --model: it sizes --model BERT only"),
    (["plan", "--generate", "--clients", "100000", "--model", "CNN"],
     "--generate needs --clients N, from 1 to 1024 (NUM_CLIENTS's limit); got 100000"),
    (["plan", "--generate", "--clients", "1025", "--partitions", "4"], "from 1 to 1024"),
])
def test_generate_refuses_what_it_would_bend(args, message, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


@pytest.mark.parametrize("model, bert, partitions", [
    ("cnn", None, 4), ("Resnet18", None, 10), ("bert", "MINI", 6), ("BERT", None, 4)])
def test_generate_takes_model_names_in_any_case_as_env_does(model, bert, partitions, capsys):
    extra = ["--bert-model", bert] if bert else []
    assert main(["plan", "--generate", "--clients", "2", "--model", model, *extra,
                 "--format", "json"]) == 0
    lists = json.loads(capsys.readouterr().out)
    assert lists[0][-1] == f"1_{2 * partitions}"


def test_generate_at_the_client_limit_and_with_distinct_offloads_still_works(capsys):
    assert main(["plan", "--generate", "--clients", "1024", "--partitions", "2",
                 "--owners", "1", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1024
    assert main([*BASE, "--offload", "1:2=2", "--offload", "1:3=3", "--offload", "2:2-3=3"]) == 0
