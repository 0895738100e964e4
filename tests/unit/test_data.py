import gzip
import struct

import numpy as np
import pytest
import torch

from splitnet.config.settings import settings_from_values
from splitnet.errors import ConfigError
from splitnet.learning.data import dataset_spec, load_dataset, owner_data, shard_indices, tokenize

STAGES = "[['1_1','1_2','1_3','1_4','1_5','1_6','1_7','1_8']]"


def settings(**values):
    return settings_from_values({"SIMULATION_STAGES_CLIENTS": STAGES, **values})


@pytest.mark.parametrize("partitioning", ["iid", "dirichlet"])
def test_shards_are_disjoint_cover_everything_and_are_deterministic(partitioning):
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    shards = shard_indices(labels, 5, partitioning, 0.3, seed=1)
    joined = np.concatenate(shards)
    assert sorted(joined.tolist()) == list(range(1000))
    assert all(len(s) > 0 for s in shards)
    again = shard_indices(labels, 5, partitioning, 0.3, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again, strict=True))


def test_dirichlet_skews_labels_more_than_iid():
    labels = np.random.default_rng(0).integers(0, 10, 5000)

    def skew(shards):
        return np.mean([np.bincount(labels[s], minlength=10).max() / len(s) for s in shards])

    assert skew(shard_indices(labels, 5, "dirichlet", 0.1, 1)) > skew(shard_indices(labels, 5, "iid", 0.1, 1)) + 0.2


def test_digits_owner_gets_its_own_shard_and_a_validation_split():
    s = settings()
    data = load_dataset(s)
    assert data.spec.shape == dataset_spec(s).shape == (1, 8, 8)
    first, second = owner_data(data, 0, s, 2), owner_data(data, 1, s, 2)
    assert len(first.val_y) > 0
    assert len(first.train_y) + len(first.val_y) + len(second.train_y) + len(second.val_y) == len(data.train_y)
    rows = {tuple(r.tolist()) for r in first.train_x.flatten(1)}
    assert not any(tuple(r.tolist()) in rows for r in second.train_x.flatten(1)[:50])


def _idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_mnist_is_read_from_idx_files(tmp_path):
    folder = tmp_path / "MNIST"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 255, (20, 28, 28))
    _idx(folder / "train-images-idx3-ubyte.gz", images)
    _idx(folder / "train-labels-idx1-ubyte.gz", np.arange(20) % 10)
    _idx(folder / "t10k-images-idx3-ubyte.gz", images[:5])
    _idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(5))
    data = load_dataset(settings(CURRENT_DATASET="MNIST", DATA_DIR=str(tmp_path)))
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_y.tolist() == [0, 1, 2, 3, 4]
    expected = (images[3, 4, 5] / 255.0 - 0.5) / 0.5
    assert abs(float(data.train_x[3, 0, 4, 5]) - expected) < 1e-6


def test_cifar10_is_read_from_the_binary_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = np.concatenate([np.full((4, 1), 7), rng.integers(0, 255, (4, 3072))], axis=1)
        (folder / name).write_bytes(records.astype(np.uint8).tobytes())
    data = load_dataset(settings(CURRENT_DATASET="CIFAR10", DATA_DIR=str(tmp_path)))
    assert data.train_x.shape == (20, 3, 32, 32) and set(data.train_y.tolist()) == {7}


@pytest.mark.parametrize("name, hint", [("MNIST", "DATASET_DOWNLOAD=true"), ("CIFAR100", "cifar-100-binary"),
                                        ("AG_NEWS", "train.csv"), ("IMDB", "aclImdb")])
def test_missing_dataset_says_where_it_looked_and_how_to_provide_it(tmp_path, name, hint):
    model = "BERT" if name in ("AG_NEWS", "IMDB") else "CNN"
    stages = STAGES
    with pytest.raises(ConfigError, match=str(tmp_path)) as info:
        load_dataset(settings_from_values({"SIMULATION_STAGES_CLIENTS": stages, "CURRENT_MODEL": model,
                                           "CURRENT_DATASET": name, "DATA_DIR": str(tmp_path)}))
    assert hint in str(info.value)


def test_ag_news_csv_is_tokenized_offline(tmp_path):
    folder = tmp_path / "ag_news"
    folder.mkdir()
    (folder / "train.csv").write_text('"3","Wall St. Bears","Short-sellers are back"\n"1","World","news"\n')
    (folder / "test.csv").write_text('"2","Sports","a game"\n')
    data = load_dataset(settings_from_values({"SIMULATION_STAGES_CLIENTS": STAGES, "CURRENT_MODEL": "BERT",
                                              "CURRENT_DATASET": "AG_NEWS", "DATA_DIR": str(tmp_path)}))
    assert data.train_y.tolist() == [2, 0] and data.train_x.dtype == torch.int64
    assert data.train_x[0, 0] == 1 and tokenize("Wall") == tokenize("wall")
