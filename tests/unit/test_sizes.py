"""Wire limits: the computed sizes match a real forward/backward pass and real safetensors."""

import pytest
import torch
from safetensors.torch import save

from splitnet.learning.data import dataset_spec
from splitnet.learning.keys import flatten
from splitnet.learning.models import build_partitions
from splitnet.learning.sizes import BULK_MARGIN, BULK_SLACK, wire_limits
from splitnet.runtime import Replicas

from ..conftest import plan_of

EXAMPLES = ["cnn_cross_offload.env", "resnet18_offload.env", "resnet50_offload.env",
            "bert_tiny.env"]


def _wire_tensors(parts, spec, batch):
    """Every activation and gradient of one real training step at ``batch``, as sent."""
    torch.manual_seed(0)
    if spec.vocab_size:
        x = torch.randint(1, spec.vocab_size, (batch, *spec.shape))
    else:
        x = torch.randn(batch, *spec.shape)
    outputs = []
    for part in parts:
        x = part(x)
        x.retain_grad()
        outputs.append(x)
    x.float().sum().backward()
    return outputs + [o.grad for o in outputs[:-1]]


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_limits_are_the_largest_tensor_and_bulk_object_of_a_real_run(name):
    plan = plan_of(name, BATCH_SIZE="3")
    s = plan.training
    limits = wire_limits(plan)

    spec = dataset_spec(s)
    parts = build_partitions(s.model, spec, s.seed, s.bert_model)
    sent = _wire_tensors(parts, spec, 3)
    assert limits.tensor_bytes == max(t.numel() * t.element_size() for t in sent)

    model = len(save(flatten({p: part.state_dict() for p, part in enumerate(parts, 1)})))
    states = [len(save(Replicas(plan, k, parts, s.optimizer, s.learning_rate).states()))
              for k in range(1, s.num_clients + 1)]
    largest = max(model, *states)
    assert largest <= limits.bulk_bytes <= largest * (1 + 2 * BULK_MARGIN) + 2 * BULK_SLACK


def test_the_tensor_limit_grows_with_the_batch_size():
    small = wire_limits(plan_of("cnn_cross_offload.env", BATCH_SIZE="3"))
    large = wire_limits(plan_of("cnn_cross_offload.env", BATCH_SIZE="6"))
    assert large.tensor_bytes == 2 * small.tensor_bytes
    assert large.bulk_bytes == small.bulk_bytes
