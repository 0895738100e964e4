"""What splitnet prints about one client says "1 client", not "1 clients"."""

from splitnet.cli import main

from ..conftest import plan_of


def test_compose_for_one_client_says_1_client(tmp_path, capsys):
    assert main(["compose", "--clients", "1", "--output", str(tmp_path / "c.yml")]) == 0
    assert "for 1 client;" in capsys.readouterr().out


def test_a_one_client_plan_says_1_client(capsys):
    lists = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"]]'
    assert plan_of(SIMULATION_STAGES_CLIENTS=lists).summary().startswith(
        "Valid plan: 1 client; data owners 1;")
    assert plan_of("cnn_all_local.env").summary().startswith("Valid plan: 5 clients;")
