"""Whole runs of several nodes in one process on the in-memory transport (no sockets)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from splitnet.config import load
from splitnet.config.envfile import read_env_file
from splitnet.errors import (
    PeerUnavailable,
    PlanMismatch,
    ProtocolError,
    RuntimeFailure,
    SplitnetError,
)
from splitnet.learning.averaging import average_replicas
from splitnet.node import Node
from splitnet.node.aggregator import Aggregator
from splitnet.node.rounds import INITIAL, MODEL, Rounds
from splitnet.plan.plan import build_plan
from splitnet.runtime.segment import Segment
from splitnet.telemetry.records import RoundReport
from splitnet.transport.codec import TensorMeta
from splitnet.transport.memory import MemoryHub, MemoryNetwork
from splitnet.transport.messages import Blob, TaskMessage

from ..conftest import EXAMPLES

THREE = ('[["1_1","1_2","3_2","1_3","3_3","1_4","1_5","1_6","3_6","1_7","3_7","1_8"],'
         '["2_1","2_3","2_4","2_5","2_6","2_8"],["3_1","2_2","3_4","3_5","2_7","3_8"]]')
SMALL = {"CURRENT_MODEL": "CNN", "CURRENT_DATASET": "DIGITS", "BATCH_SIZE": "64",
         "LEARNING_RATE": "0.1", "TRAINING_NUM_ROUNDS": "2", "TRAINING_NUM_EPOCHS": "1",
         "SIMULATION_STAGES_CLIENTS": THREE}


def example(name: str, **overrides: str) -> dict[str, str]:
    values, violations, _ = read_env_file(EXAMPLES / name)
    assert not violations
    return {**values, **overrides}


def build(values: dict[str, str], results: Path) -> tuple[list[Node], list[MemoryNetwork]]:
    values = {"JOIN_TIMEOUT": "10", "PEER_TIMEOUT": "30",
              "CHECKPOINT_DIR": str(results / "checkpoints"), **values, "RESULTS_DIR": str(results),
              "METRICS_PORT": "0", "TORRENT_PORT": "0"}
    hub = MemoryHub()
    n = load(values=values).training.num_clients
    networks = [hub.network(k) for k in range(1, n + 1)]
    nodes = []
    for k, network in enumerate(networks, 1):
        settings = load(values={**values, "CLIENT_NUMBER": str(k)})
        nodes.append(Node(build_plan(settings.training), settings, network))
    return nodes, networks


def run(nodes: list[Node], *also: Any) -> list[Any]:
    async def main() -> list[Any]:
        return await asyncio.gather(*(node.run() for node in nodes), *also,
                                    return_exceptions=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic kernels: placements compare to 1e-5
    try:
        return asyncio.run(main())
    finally:
        torch.set_num_threads(threads)


def errors(results: list[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def final_model(results: Path) -> dict[str, torch.Tensor]:
    return load_file(str(sorted((results / "latest" / "models").glob("round*.safetensors"))[-1]))


def test_a_run_ends_with_the_summary_and_the_fedavg_of_the_replicas(tmp_path, monkeypatch):
    states: dict[tuple[int, int], bytes] = {}
    reports: dict[tuple[int, int], str] = {}
    own_states, own_report = Rounds.states, Aggregator.round_done

    async def recording_states(self: Rounds, round_: int, weights: Any = None) -> Any:
        blob = await own_states(self, round_, weights)
        states[(round_, self.me)] = blob.data
        return blob

    def recording_report(self: Aggregator, client: int, round_: int, text: str) -> None:
        reports[(round_, client)] = text
        own_report(self, client, round_, text)

    monkeypatch.setattr(Rounds, "states", recording_states)
    monkeypatch.setattr(Aggregator, "round_done", recording_report)
    nodes, _ = build(SMALL, tmp_path)
    results = run(nodes)
    assert not errors(results), results

    summary = results[0]
    assert summary["rounds"] == 2 and summary["clients"] == 3
    assert {"fingerprint", "test_accuracy", "f1_macro", "train_loss", "exchange_seconds",
            "peak_rss_mib", "bytes_sent", "model_bytes_on_disk"} <= summary.keys()
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and len(summary["exchange_seconds"]) == 2
    assert results[1:] == [{"client": 2}, {"client": 3}]
    run_dir = tmp_path / "latest"  # every client wrote into the run's folder
    assert (run_dir / "summary.json").exists()
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3
    assert {p.name for p in run_dir.glob("timeline-client*.csv")} == {
        "timeline-client1.csv", "timeline-client2.csv", "timeline-client3.csv"}

    last = summary["rounds"] - 1
    weights = {o.owner: float(o.samples) for k in (1, 2, 3)
               for o in RoundReport.from_json(reports[(last, k)], k, last).owners}
    assert set(weights) == {1, 2, 3}
    expected = average_replicas([load_safetensors(states[(last, k)]) for k in (1, 2, 3)],
                                weights)
    model = final_model(tmp_path)
    assert model.keys() == expected.keys()
    for key in expected:
        assert torch.equal(model[key], expected[key]), key


def test_placement_does_not_change_the_averaged_weights(tmp_path):
    one_round = {"TRAINING_NUM_ROUNDS": "1", "TRAINING_NUM_EPOCHS": "1"}
    local, _ = build(example("cnn_all_local.env", **one_round), tmp_path / "local")
    offloaded, _ = build(example("cnn_cross_offload.env", **one_round), tmp_path / "offloaded")
    results = run(local) + run(offloaded)
    assert not errors(results), results
    a, b = final_model(tmp_path / "local"), final_model(tmp_path / "offloaded")
    assert a.keys() == b.keys() and len(a) == 8
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0)


GOOD_REPORT = '{"owners": [{"owner": 2, "samples": 3, "batches": 1, "loss_sum": 0.5}]}'


@pytest.mark.parametrize("client, round_, text, field", [
    (2, 0, "not json", "not JSON"),
    (2, 0, '{"owners": [{"owner": 2, "samples": -3, "batches": 1, "loss_sum": 0.5}]}', "samples"),
    (2, 0, '{"owners": [{"owner": 2, "batches": 1, "loss_sum": 0.5}]}', "'samples'"),
    (2, 0, '{"owners": "all"}', "owners"),
    (2, 0, '{"owners": [{"owner": 1, "samples": 3, "batches": 1, "loss_sum": 0.5}]}', "owners [1]"),
    (2, 1, GOOD_REPORT, "collects round 0"),  # a round ahead
    (2, 7, GOOD_REPORT, "rounds 0..1"),  # not a round of the plan
    (1, 0, GOOD_REPORT, "the aggregator itself"),  # a peer posing as the aggregator
])
def test_a_malformed_round_report_is_refused_and_the_run_completes(tmp_path, client, round_,
                                                                   text, field):
    nodes, networks = build(SMALL, tmp_path)
    refusals: list[BaseException] = []

    async def send_malformed() -> None:
        while networks[0].handler is None:  # the aggregator is serving
            await asyncio.sleep(0.01)
        try:
            if client == networks[1].me:
                await networks[1].peers[1].round_done(round_, text)
            else:  # what a forged wire message would make the aggregator's handler see
                await networks[0].handler.round_done(client, round_, text)
        except ProtocolError as exc:
            refusals.append(exc)

    results = run(nodes, send_malformed())
    assert not errors(results), results
    assert results[0]["rounds"] == 2
    assert len(refusals) == 1 and field in str(refusals[0]), refusals


def test_a_failing_step_stops_every_node_with_an_error_naming_it(tmp_path, monkeypatch):
    forward = Segment.forward

    def failing_forward(self: Segment, *args: Any, **kwargs: Any) -> Any:
        if self.first == 2:  # the helper's segment: partitions 2-3 run on client 2
            raise ValueError("boom in the helper")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(Segment, "forward", failing_forward)
    nodes, _ = build(example("owner_and_helper.env", TRAINING_NUM_ROUNDS="1"), tmp_path)
    owner, helper = run(nodes)
    assert isinstance(helper, RuntimeFailure) and "boom in the helper" in str(helper)
    assert "task 1_2" in str(helper)
    assert isinstance(owner, RuntimeFailure) and "client 2" in str(owner), owner
    assert "boom in the helper" in str(owner)


def test_a_different_plan_is_refused_at_join_and_both_sides_name_the_difference(tmp_path):
    nodes, networks = build(example("owner_and_helper.env"), tmp_path)
    settings = load(values={**example("owner_and_helper.env"), "SEED": "7", "CLIENT_NUMBER": "2",
                            "RESULTS_DIR": str(tmp_path), "METRICS_PORT": "0",
                            "CHECKPOINT_DIR": str(tmp_path / "other-checkpoints")})
    nodes[1] = Node(build_plan(settings.training), settings, networks[1])
    results = run(nodes)
    assert all(isinstance(r, PlanMismatch) for r in results), results
    for r in results:
        assert "seed (client" in str(r) and "42" in str(r) and "7" in str(r)


def test_a_peer_that_never_answers_fails_the_join_naming_it(tmp_path):
    nodes, _ = build(example("owner_and_helper.env", JOIN_TIMEOUT="0.3"), tmp_path)
    (result,) = run(nodes[:1])
    assert isinstance(result, PeerUnavailable), result
    assert "client 2" in str(result) and "JOIN_TIMEOUT=0.3" in str(result)


def test_a_stopped_node_tells_the_others_why(tmp_path):
    nodes, networks = build(SMALL, tmp_path)

    async def stop_client_3() -> None:
        while networks[0].handler is None or nodes[2].results.run_id is None:
            await asyncio.sleep(0.01)
        nodes[2].stop("stopped by SIGTERM")

    *results, _ = run(nodes, stop_client_3())
    assert all(isinstance(r, RuntimeFailure) for r in results), results
    assert "client 3 stopped by SIGTERM" in str(results[2])
    for r in results[:2]:
        assert "client 3 stopped: client 3 stopped by SIGTERM" in str(r)
    assert (tmp_path / "latest" / "timeline-client3.csv").exists()  # on the failure path too


def test_a_vanished_peer_makes_the_others_stop_with_an_error_naming_it(tmp_path):
    nodes, _ = build({**SMALL, "TRAINING_NUM_ROUNDS": "50", "PEER_TIMEOUT": "1"}, tmp_path)

    async def main() -> list[Any]:
        runs = [asyncio.ensure_future(node.run()) for node in nodes]
        while not (tmp_path / "latest" / "models" / "round1.safetensors").exists():
            assert not runs[0].done(), runs[0]
            await asyncio.sleep(0.01)
        runs[2].cancel()  # client 3 is gone without a word (as if killed)
        return await asyncio.gather(*runs[:2], return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeFailure) for r in results), results
    for r in results:
        assert "client 3" in str(r), r


def test_a_dataset_the_aggregator_cannot_read_reaches_the_peers_as_an_abort(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    nodes, _ = build({**SMALL, "CURRENT_DATASET": "MNIST", "DATA_DIR": str(empty),
                      "JOIN_TIMEOUT": "30"}, tmp_path / "results")
    results = run(nodes)
    assert all(isinstance(r, SplitnetError) for r in results), results
    assert "MNIST" in str(results[0])
    for r in results[1:]:  # told at once (Note: data after join), not after JOIN_TIMEOUT
        assert "client 1 stopped" in str(r) and "MNIST" in str(r), r


def test_a_reference_the_client_cannot_fetch_is_refused_counted_and_survived(tmp_path):
    nodes, networks = build(SMALL, tmp_path)
    refusals: list[BaseException] = []

    async def send_reference() -> None:
        while networks[1].handler is None:
            await asyncio.sleep(0.01)
        reference = TaskMessage(1, 2, 0, 0, 1, None, {"info_hash": "00" * 20},
                                TensorMeta("float32", (1,), 4))
        try:
            await networks[1].handler.tensor(reference)
        except ProtocolError as exc:
            refusals.append(exc)

    results = run(nodes, send_reference())
    assert not errors(results), results
    assert len(refusals) == 1 and "BitTorrent" in str(refusals[0]), refusals
    assert nodes[1].rejected == 1


def test_a_join_with_another_plan_or_number_is_refused_and_the_run_goes_on(tmp_path, caplog):
    nodes, networks = build(SMALL, tmp_path)
    other = load(values={**SMALL, "SEED": "7", "CLIENT_NUMBER": "2", "RESULTS_DIR": str(tmp_path),
                         "METRICS_PORT": "0"})
    other_plan = build_plan(other.training)
    refusals: list[BaseException] = []

    async def join_with_another_plan() -> None:
        while not (tmp_path / "latest" / "models" / "round1.safetensors").exists():
            await asyncio.sleep(0.01)
        handler = networks[0].handler
        for client, fingerprint in ((2, other_plan.fingerprint), (2, other_plan.fingerprint),
                                    (9, nodes[0].plan.fingerprint)):
            try:
                await handler.join(client, fingerprint, other_plan.facts(), 0, 0, "")
            except (PlanMismatch, ProtocolError) as exc:
                refusals.append(exc)
        for client in (2, 9):  # the refused joiner stops and tells its peers: not fatal here
            try:
                await handler.abort(client, "my plan differs")
            except ProtocolError as exc:
                refusals.append(exc)
        await networks[0].handler.join(2, nodes[0].plan.fingerprint, nodes[0].plan.facts(), 0, 0,
                                       "")

    with caplog.at_level("WARNING", logger="splitnet.node"):
        results = run(nodes, join_with_another_plan())
    assert not errors(results), results
    assert results[0]["rounds"] == 2
    assert [type(r) for r in refusals] == [PlanMismatch, PlanMismatch, ProtocolError,
                                           ProtocolError, ProtocolError], refusals
    assert "seed (client 1: 42, client 2: 7)" in str(refusals[0])
    assert "client 9" in str(refusals[2]) and "not a peer" in str(refusals[2])
    joins = [r.getMessage() for r in caplog.records if "refused a join" in r.getMessage()]
    assert len(joins) == 2 and all("\n" not in line for line in joins), joins  # logged once


def _forged_models() -> dict[str, Any]:
    """Return a builder per forged push: (sender, kind, round, bytes from the good model)."""
    def nan(model: dict[str, torch.Tensor]) -> bytes:
        key = next(iter(model))
        return save_safetensors({**model, key: torch.full_like(model[key], float("nan"))})

    def shape(model: dict[str, torch.Tensor]) -> bytes:
        key = next(iter(model))
        return save_safetensors({**model, key: torch.zeros(3, 1)})

    def extra(model: dict[str, torch.Tensor]) -> bytes:
        return save_safetensors({**model, "9/weight": torch.zeros(1)})

    def same(model: dict[str, torch.Tensor]) -> bytes:
        return save_safetensors(model)

    return {"non-finite": (1, MODEL, 0, nan), "tensor 1/": (1, MODEL, 0, shape),
            "extra": (1, MODEL, 0, extra), "not safetensors": (1, MODEL, 0, lambda m: b"junk"),
            "only the aggregator": (2, MODEL, 0, same), "awaits round 0": (1, MODEL, 1, same),
            "awaits round 0's": (1, INITIAL, 0, same)}


@pytest.mark.parametrize("rule", list(_forged_models()))
def test_a_forged_model_push_mid_run_is_refused_and_the_model_is_unchanged(tmp_path, rule):
    plain, _ = build(SMALL, tmp_path / "plain")
    assert not errors(run(plain))
    nodes, networks = build(SMALL, tmp_path / "forged")
    sender, kind, round_, forge = _forged_models()[rule]
    refusals: list[BaseException] = []

    async def push_forged() -> None:
        while networks[2].handler is None:
            await asyncio.sleep(0.01)
        rounds = networks[2].handler._rounds  # push once round 0 runs
        while rounds.awaited != 0:
            await asyncio.sleep(0.01)
        model = final_model(tmp_path / "plain")
        blob = Blob(kind, round_, sender, forge(model), {})
        try:
            await networks[2].handler.put_model(blob)
        except ProtocolError as exc:
            refusals.append(exc)

    results = run(nodes, push_forged())
    assert not errors(results), results
    assert len(refusals) == 1 and rule in str(refusals[0]), refusals
    forged, expected = final_model(tmp_path / "forged"), final_model(tmp_path / "plain")
    assert forged.keys() == expected.keys()
    assert all(torch.equal(forged[k], expected[k]) for k in expected)


def test_a_finish_from_a_client_other_than_the_aggregator_is_refused(tmp_path):
    nodes, networks = build(SMALL, tmp_path)
    refusals: list[BaseException] = []

    async def finish_from_2() -> None:
        while networks[2].handler is None:
            await asyncio.sleep(0.01)
        try:
            await networks[2].handler.finish(2, "forged")
        except ProtocolError as exc:
            refusals.append(exc)

    results = run(nodes, finish_from_2())
    assert not errors(results), results
    assert results[0]["rounds"] == 2
    assert len(refusals) == 1 and "only the aggregator" in str(refusals[0]), refusals


def test_a_states_pull_for_another_round_than_the_awaited_one_is_refused(tmp_path):
    nodes, networks = build(SMALL, tmp_path)
    refusals: list[BaseException] = []

    async def pull_round_1() -> None:
        while networks[2].handler is None:
            await asyncio.sleep(0.01)
        try:
            await networks[2].handler.get_states(1, 1)  # round 1 is not under way yet
        except ProtocolError as exc:
            refusals.append(exc)

    results = run(nodes, pull_round_1())
    assert not errors(results), results
    assert len(refusals) == 1 and "only round" in str(refusals[0]), refusals


def test_only_the_aggregator_is_given_a_clients_replica_states(tmp_path):
    nodes, networks = build(SMALL, tmp_path)
    refusals: list[BaseException] = []

    async def pull_as_client_2() -> None:
        while networks[2].handler is None:  # client 3's
            await asyncio.sleep(0.01)
        try:
            await networks[2].handler.get_states(2, 0)  # the round under way, but not client 1
        except ProtocolError as exc:
            refusals.append(exc)

    results = run(nodes, pull_as_client_2())
    assert not errors(results), results
    assert len(refusals) == 1, refusals
    assert "client 2 asked for client 3's replica states; only the aggregator (client 1)" in \
        str(refusals[0])
