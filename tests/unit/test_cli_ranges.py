"""Flags out of their range exit 2 naming the flag, before anything runs or is written."""

import pytest

from splitnet.cli import main


@pytest.mark.parametrize("args, messages", [
    (["certs", "--clients", "1", "--days", "100000000"],
     ["--days 100000000: expected 1 to 36500"]),
    (["certs", "--clients", "1", "--host", ""], ["--host '': expected a DNS name"]),
    (["certs", "--clients", "1", "--host", " ", "--host", "ü.example", "--host", "a b"],
     ["--host ' ': expected", "--host 'ü.example': expected", "--host 'a b': expected"]),
    (["certs", "--clients", "0"], ["--clients 0: expected 1 to 1024"]),
    (["certs", "--add", "0", "--add", "2000"], ["--add 0: expected a client number",
                                                "--add 2000: expected"]),
    (["attack", "label-leak", "--sigmas", "1e308"],
     ["--sigmas '1e308': expected noise multipliers from 0 to 1e+06"]),
    (["attack", "invert", "--sigmas", "0,nan"], ["--sigmas '0,nan': expected"]),
    (["attack", "label-leak", "--seed", "4294967296"],
     ["--seed 4294967296: expected a whole number from 0 to 4294967295"]),
    (["attack", "invert", "--seed", "-1"], ["--seed -1: expected"]),
    (["bench", "--seed", "99999999999999999999"], ["--seed 99999999999999999999: expected"]),
    (["bench", "--seed", "-1", "--lr", "nan"], ["--seed -1: expected",
                                                 "--batch-size and --lr must be positive"]),
])
def test_a_flag_out_of_range_is_refused_naming_the_flag(args, messages, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert all(message in err for message in messages), err
    assert "SEED=" not in err and "internal error" not in err
    assert not out.exists()


def test_every_host_form_a_certificate_takes_is_accepted(tmp_path, capsys):
    hosts = ["10.0.0.9", "::1", "node-1.example", "splitnet_client1", "*.lab.example",
             "fqdn.example."]
    args = [word for host in hosts for word in ("--host", host)]
    assert main(["certs", "--clients", "1", "--days", "36500", "--out", str(tmp_path), *args]) == 0
    assert "wrote" in capsys.readouterr().out
