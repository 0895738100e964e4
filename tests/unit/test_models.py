"""Every model: partitions compose to the whole model, and partitioned training steps match it."""

import copy

import pytest
import torch
from torch import nn

from splitnet.config import catalog
from splitnet.learning.models import InputSpec, build_partitions, compose
from splitnet.learning.models.bert import bert_partitions
from splitnet.learning.models.resnet import resnet_partitions
from splitnet.runtime.segment import Segment

CASES = [
    ("CNN", InputSpec((1, 8, 8), 10), "tiny"),
    ("CNN", InputSpec((1, 28, 28), 10), "tiny"),
    ("CNN", InputSpec((3, 32, 32), 10), "tiny"),
    ("RESNET18", InputSpec((3, 32, 32), 10), "tiny"),
    ("RESNET50", InputSpec((3, 32, 32), 100), "tiny"),
    ("BERT", InputSpec((16,), 4, 500), "tiny"),
    ("BERT", InputSpec((16,), 2, 500), "mini"),
]


def inputs(spec, batch=4):
    torch.manual_seed(0)
    if spec.vocab_size:
        x = torch.randint(1, spec.vocab_size, (batch, *spec.shape))
        x[0, -3:] = 0  # padding exercises the attention mask
        return x
    return torch.randn(batch, *spec.shape)


@pytest.mark.parametrize("segmented", [False, True], ids=["per-partition", "two-segments"])
@pytest.mark.parametrize("model, spec, size", CASES, ids=lambda c: getattr(c, "shape", c))
def test_partitioned_step_matches_the_whole_model(model, spec, size, segmented):
    parts = build_partitions(model, spec, seed=3, bert_model=size)
    assert len(parts) == catalog.num_partitions(model, size)
    whole = compose(copy.deepcopy(parts))
    whole.train()
    x, y = inputs(spec), torch.arange(4) % spec.num_classes
    loss = nn.functional.cross_entropy(whole(x), y)
    loss.backward()

    cut = len(parts) // 2
    groups = [parts[:cut], parts[cut:]] if segmented else [[part] for part in parts]
    firsts = [1, cut + 1] if segmented else list(range(1, len(parts) + 1))
    replicas = [Segment(1, first, group, "SGD", 0.0) for first, group in zip(firsts, groups,
                                                                              strict=True)]
    h = x
    for r in replicas:
        h = r.forward(0, h)
    split_loss, grad = replicas[-1].backward_loss(0, y)
    for r in reversed(replicas[:-1]):
        grad = r.backward(0, grad)
    assert grad is None  # the first partition needs no input gradient
    assert abs(split_loss - loss.item()) < 1e-5
    split_grads = [p.grad for r in replicas for p in r.module.parameters()]
    whole_grads = [p.grad for p in whole.parameters()]
    assert len(split_grads) == len(whole_grads)
    for a, b in zip(split_grads, whole_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_same_seed_gives_identical_weights():
    a = build_partitions("CNN", InputSpec((1, 8, 8), 10), seed=5)
    b = build_partitions("CNN", InputSpec((1, 8, 8), 10), seed=5)
    c = build_partitions("CNN", InputSpec((1, 8, 8), 10), seed=6)
    flat = lambda parts: torch.cat([p.flatten() for m in parts for p in m.parameters()])  # noqa: E731
    assert torch.equal(flat(a), flat(b)) and not torch.equal(flat(a), flat(c))


def count(parts):
    return sum(p.numel() for m in parts for p in m.parameters())


def test_resnets_match_the_published_parameter_counts():
    assert count(resnet_partitions("RESNET18", (3, 224, 224), 1000, "imagenet")) == 11_689_512
    assert count(resnet_partitions("RESNET50", (3, 224, 224), 1000, "imagenet")) == 25_557_032
    assert count(resnet_partitions("RESNET18", (3, 32, 32), 10)) == 11_173_962  # CIFAR stem


def test_bert_base_matches_the_published_parameter_count():
    parts = bert_partitions("base", 30522, 128, 2)
    without_classifier = count(parts) - count([parts[-1].classifier])
    assert len(parts) == 14 and without_classifier == 109_482_240


def test_bert_loads_published_weight_names_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    source = bert_partitions("tiny", 500, 16, 4)
    names = {}
    for key, value in source[0].state_dict().items():
        names[f"bert.embeddings.{key}"] = value
    for i, layer in enumerate(source[1:-1]):
        for key, value in layer.state_dict().items():
            names[f"bert.encoder.layer.{i}.{key}"] = value
    for key, value in source[-1].pooler.state_dict().items():
        names[f"bert.pooler.{key}"] = value
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in names.items()}, str(path))
    loaded = build_partitions("BERT", InputSpec((16,), 4, 500), seed=99, pretrained=str(path))
    for a, b in zip(source[:-1], loaded[:-1], strict=True):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert ka == kb and torch.equal(va, vb)
    torch.testing.assert_close(loaded[-1].pooler.dense.weight, source[-1].pooler.dense.weight)
