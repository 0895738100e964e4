"""The Flower apps of the bench's Flower row; imported only inside ``.venv-flower``.

Nothing in the package imports this module (flwr is not one of splitnet's dependencies; its pins
clash with ours, see ``scripts/flower-venv.sh``). The run config (written by
:mod:`splitnet.bench.flower`) names the all-local settings file (``env-file``) and the folder
the ServerApp writes to (``out``); each SuperNode's node config names its owner (``owner``).

- ``client``: owner k trains its splitnet shard for ``TRAINING_NUM_EPOCHS`` epochs a round, in
  the owner feeder's batch order (:func:`splitnet.bench.flower_train.train_round`), one torch
  thread as in ``splitnet local``, and replies with its weights and ``num-examples`` = the
  samples it trained (FedAvg's weight, as in splitnet's aggregator).
- ``server``: Flower's own FedAvg (``flwr.serverapp.strategy.FedAvg``) over every owner for
  ``TRAINING_NUM_ROUNDS`` rounds, no federated evaluation; it times ``strategy.start`` (the
  training seconds) and writes ``model.safetensors`` (the final global model, splitnet's
  ``compose`` keys) and ``flower.json``.
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from safetensors.torch import save_file

from splitnet.bench.flower_train import FlowerJob, train_round

__all__ = ["client", "server"]

client = ClientApp()
server = ServerApp()


@cache
def _job(env_file: str) -> FlowerJob:
    job = FlowerJob.load(Path(env_file))
    torch.set_num_threads(job.settings.output.torch_threads or 1)
    return job


@client.train()
def train(msg: Message, context: Context) -> Message:
    """Train this SuperNode's owner for one round from the global weights."""
    job = _job(str(context.run_config["env-file"]))
    owner = int(context.node_config["owner"])
    round_ = int(msg.content["config"]["server-round"]) - 1
    model = job.model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    samples, loss = train_round(job, model, owner, round_)
    metrics = MetricRecord({"num-examples": samples, "train_loss": loss, "owner": owner})
    return Message(content=RecordDict({"arrays": ArrayRecord(model.state_dict()),
                                       "metrics": metrics}), reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Run FedAvg over every owner; write the final model and the timing."""
    job = _job(str(context.run_config["env-file"]))
    out = Path(str(context.run_config["out"]))
    t = job.plan.training
    owners = len(job.plan.owners)
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=owners,
                      min_available_nodes=owners)
    start = time.time()
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(job.model().state_dict()),
                            num_rounds=t.num_rounds, train_config=ConfigRecord({}))
    seconds = time.time() - start
    state = {k: v.contiguous() for k, v in result.arrays.to_torch_state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    samples = sum(len(job.shard(o).train_y) for o in job.plan.owners) * t.num_epochs
    (out / "flower.json").write_text(json.dumps({
        "train_seconds": seconds, "samples": samples * t.num_rounds, "rounds": t.num_rounds,
        "owners": owners}, indent=2) + "\n")
