"""Build one client's parts and connect them (what each part is given is all it knows)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from splitnet.config.settings import Settings
from splitnet.learning.checkpoints import CheckpointStore
from splitnet.learning.data import dataset_spec, owner_data
from splitnet.learning.keys import flatten
from splitnet.learning.models import build_partitions
from splitnet.node.aggregator import Aggregator
from splitnet.node.checkpointing import Checkpointer
from splitnet.node.data import LocalData
from splitnet.node.handler import NodeHandler
from splitnet.node.membership import Membership
from splitnet.node.recorder import Recorder
from splitnet.node.reduce import Reducer, merge
from splitnet.node.resume import Resume
from splitnet.node.rounds import Report, Rounds
from splitnet.node.routing import Routing
from splitnet.node.run import RunId
from splitnet.node.secagg import SecureAggregation
from splitnet.node.state import Background, Counters, Failure
from splitnet.plan.plan import Plan
from splitnet.runtime import Feeder, Interpreter, Replicas
from splitnet.telemetry.metrics import Metrics
from splitnet.telemetry.results import ResultsWriter
from splitnet.transport.base import Network

__all__ = ["Parts", "build_parts", "checkpoint_store", "resume_of"]


@dataclass
class Parts:
    """One client's parts, connected; ``background`` runs the tasks beside the main one."""

    plan: Plan
    membership: Membership
    routing: Routing
    interpreter: Interpreter
    rounds: Rounds
    handler: NodeHandler
    aggregator: Aggregator | None
    local_data: LocalData
    evaluation_parts: list[nn.Module]
    background: Background
    resume: Resume
    checkpointer: Checkpointer | None = None

    async def feeder(self) -> Feeder | None:
        """Return this client's owner feeder (None on a helper), reading its shard."""
        me = self.rounds.me
        if me not in self.plan.owners:
            return None
        s = self.plan.training
        dataset = await self.local_data.load()
        data = owner_data(dataset, self.plan.shard_of(me), s, self.plan.num_shards)
        return Feeder(self.interpreter, me, data)

    def initial_model(self) -> dict[str, torch.Tensor]:
        """Return the aggregator's freshly built weights, keyed ``partition/name``."""
        return flatten({p: part.state_dict()
                        for p, part in enumerate(self.evaluation_parts, 1)})


def checkpoint_store(plan: Plan, settings: Settings, me: int) -> CheckpointStore:
    """Return client ``me``'s checkpoint store (``CHECKPOINT_DIR``, ``CHECKPOINT_KEEP``).

    A plan derived after a drop goes on from its ancestors' checkpoints too.
    """
    r = settings.recovery
    return CheckpointStore(Path(r.checkpoint_dir), me, plan.fingerprint, plan.facts(),
                           r.checkpoint_keep, accepted=plan.ancestors)


def resume_of(plan: Plan, settings: Settings, me: int) -> Resume:
    """Return client ``me``'s resume; an aggregator that took over reads the dropped ones' too.

    Note: aggregator hand-over (node/resume.py).
    """
    takes_over = me == plan.training.server_number and plan.dropped
    model_from = tuple(checkpoint_store(plan, settings, c)
                       for c in plan.dropped) if takes_over else ()
    keep = settings.recovery.checkpoint_keep
    return Resume(checkpoint_store(plan, settings, me),
                  enabled=settings.recovery.resume == "auto" and keep > 0,
                  num_rounds=plan.training.num_rounds, model_from=model_from)


def _checked(reducer: Reducer, replicas: Replicas) -> Callable[
        [dict[int, dict[str, torch.Tensor]]], dict[str, torch.Tensor]]:
    """Return the aggregator's merge of the holders' answers, checked against the model."""
    def merged(answers: dict[int, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        model = merge(reducer, answers)
        replicas.check_model(model)
        return model
    return merged


def build_parts(plan: Plan, settings: Settings, network: Network, metrics: Metrics,
                counters: Counters, results: ResultsWriter, failure: Failure,
                resume: Resume) -> Parts:
    """Build and connect every part of client ``network.me``."""
    s = plan.training
    me = network.me
    is_aggregator = me == s.server_number

    def partitions() -> list[nn.Module]:
        return build_partitions(s.model, dataset_spec(s), s.seed, s.bert_model,
                                settings.data.bert_pretrained)

    replicas = Replicas(plan, me, partitions(), s.optimizer, s.learning_rate)
    routing = Routing(plan, network, metrics, counters,
                      activation_transport=settings.transport.activation_transport,
                      bulk_transport=settings.transport.bulk_transport,
                      bulk_timeout=(settings.transport.torrent_timeout
                                    + settings.network.peer_timeout))
    interpreter = Interpreter(plan, me, replicas, routing.send, metrics)
    run = RunId(results, me, s.server_number, settings.output.run_id)
    secagg = SecureAggregation(plan, me) if s.secure_aggregation else None
    membership = Membership(plan, network, failure, run, resume,
                            join_timeout=settings.network.join_timeout, secagg=secagg,
                            transports={"bulk": settings.transport.bulk_transport,
                                        "activations": settings.transport.activation_transport})
    background = Background(failure)
    aggregator: Aggregator | None = None

    async def report_here(round_: int, report_json: str) -> None:
        assert aggregator is not None
        aggregator.round_done(me, round_, report_json)

    report: Report = report_here if is_aggregator else network.peers[s.server_number].round_done
    checkpointer: Checkpointer | None = None

    def checkpoint(round_: int, model: bytes) -> None:
        if checkpointer is not None:  # None: CHECKPOINT_KEEP=0
            checkpointer.take(round_, model)

    rounds = Rounds(me, s.num_rounds, interpreter, replicas, routing, network.bulk, report,
                    in_place=is_aggregator, server=s.server_number, on_model=checkpoint,
                    secagg=secagg)
    if s.aggregation == "reduce":  # AGGREGATION=reduce (node/reduce.py)
        rounds.reducer = Reducer(plan, me, replicas, routing, failure, lambda: rounds.awaited,
                                 timeout=(settings.transport.torrent_timeout
                                          + settings.network.peer_timeout), secagg=secagg)
    local_data = LocalData(s, settings.data)
    evaluation_parts: list[nn.Module] = []
    recorder: Recorder | None = None
    if is_aggregator:
        evaluation_parts = partitions()
        recorder = Recorder(plan, local_data, evaluation_parts, results, metrics, background)
        aggregator = Aggregator(plan, me, routing, network.bulk, rounds.states,
                                rounds.apply, recorder, background,
                                secure=s.secure_aggregation,
                                reduce=(None if rounds.reducer is None
                                        else _checked(rounds.reducer, replicas)),
                                pull_timeout=(None if rounds.reducer is None
                                              else 2 * rounds.reducer.timeout
                                              + settings.network.peer_timeout))
    if resume.store.keep > 0:
        checkpointer = Checkpointer(resume.store, replicas, interpreter, recorder, results)
    handler = NodeHandler(membership, routing, interpreter, rounds, aggregator, failure)
    return Parts(plan, membership, routing, interpreter, rounds, handler, aggregator, local_data,
                 evaluation_parts, background, resume, checkpointer)
