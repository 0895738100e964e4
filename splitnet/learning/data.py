"""Datasets and per-owner shards, deterministic from the settings and the seed.

Every client computes the same train/test split and the same shards without talking; owner k
(the k-th data owner) trains on shard k, less a held-out tenth (see "Note: held-out tenth").
``DIGITS`` is bundled with scikit-learn (the offline default); ``MNIST``/``CIFAR10``/``CIFAR100``
are read from ``DATA_DIR`` in their standard binary formats, ``AG_NEWS``/``IMDB`` from their
usual local files, and a missing dataset gets an error saying where it was looked for and how
to provide it.
"""

from __future__ import annotations

import csv
import gzip
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from splitnet.config.settings import DataSettings, TrainingSettings
from splitnet.errors import ConfigError, Violation
from splitnet.learning.models import InputSpec

__all__ = ["HELD_OUT_FRACTION", "Dataset", "OwnerData", "dataset_spec", "load_dataset",
           "owner_data", "shard_indices"]

VOCAB_SIZE = 30522
SEQ_LEN = 64
HELD_OUT_FRACTION = 0.1


@dataclass(frozen=True)
class Dataset:
    """A training and a held-out test set, as tensors, and what the model needs to know."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    spec: InputSpec


@dataclass(frozen=True)
class OwnerData:
    """The samples one owner trains on."""

    train_x: torch.Tensor
    train_y: torch.Tensor


_SPECS = {
    "DIGITS": ((1, 8, 8), 10, 0),
    "MNIST": ((1, 28, 28), 10, 0),
    "CIFAR10": ((3, 32, 32), 10, 0),
    "CIFAR100": ((3, 32, 32), 100, 0),
    "AG_NEWS": ((SEQ_LEN,), 4, VOCAB_SIZE),
    "IMDB": ((SEQ_LEN,), 2, VOCAB_SIZE),
}


def dataset_spec(training: TrainingSettings) -> InputSpec:
    """Return input shape and class count without loading any data (helpers own none)."""
    if training.dataset == "SYNTHETIC":
        if training.model == "BERT":
            return InputSpec((32,), 4, 1000)
        return InputSpec((3, 32, 32) if training.model.startswith("RESNET") else (1, 8, 8), 4)
    shape, classes, vocab = _SPECS[training.dataset]
    return InputSpec(shape, classes, vocab)


def load_dataset(training: TrainingSettings, data: DataSettings) -> Dataset:
    """Load ``CURRENT_DATASET`` (raising ConfigError naming the paths if it is missing)."""
    name = training.dataset
    root = Path(data.data_dir)
    if name == "DIGITS":
        return _digits(training.seed)
    if name == "SYNTHETIC":
        return _synthetic(training.seed, text=training.model == "BERT",
                          large=training.model.startswith("RESNET"))
    if name == "MNIST":
        return _mnist(root, data.dataset_download)
    if name in ("CIFAR10", "CIFAR100"):
        return _cifar(root, name, data.dataset_download)
    if name == "AG_NEWS":
        return _ag_news(root)
    return _imdb(root)


def shard_indices(labels: np.ndarray, num_shards: int, partitioning: str, alpha: float,
                  seed: int) -> list[np.ndarray]:
    """Cut sample indices into ``num_shards`` shards: iid, or Dirichlet(alpha) label skew."""
    rng = np.random.default_rng(seed)
    if partitioning == "iid":
        return [np.sort(s) for s in np.array_split(rng.permutation(len(labels)), num_shards)]
    shards: list[list[int]] = [[] for _ in range(num_shards)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet([alpha] * num_shards)
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
        for index, part in enumerate(np.split(members, cuts)):
            shards[index].extend(part.tolist())
    # Note: empty shard. A very skewed draw may leave a shard empty; give it one sample from the
    # largest shard so every owner can train.
    for shard in shards:
        if not shard:
            donor = max(shards, key=len)
            shard.append(donor.pop())
    return [np.sort(np.array(s, dtype=np.int64)) for s in shards]


def owner_data(dataset: Dataset, shard: int, training: TrainingSettings,
               num_shards: int) -> OwnerData:
    """Return what the owner of shard ``shard`` (0-based) trains on.

    Note: held-out tenth. The shard is shuffled with its own seed and its first tenth (none
    below 10 samples) is left out of training. It was once a validation split that nothing
    read; it is kept out so that every run trains on exactly the samples, in exactly the order,
    that earlier runs did.
    """
    labels = dataset.train_y.numpy()
    indices = shard_indices(labels, num_shards, training.data_partitioning,
                            training.dirichlet_alpha, training.seed)[shard]
    rng = np.random.default_rng(training.seed + 1 + shard)
    indices = rng.permutation(indices)
    held_out = int(len(indices) * HELD_OUT_FRACTION) if len(indices) >= 10 else 0
    train = indices[held_out:]
    return OwnerData(dataset.train_x[train], dataset.train_y[train])


def _split(x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float = 0.2) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _bundle(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
            num_classes: int, vocab: int = 0) -> Dataset:
    tx = torch.from_numpy(np.ascontiguousarray(train_x))
    return Dataset(tx, torch.from_numpy(train_y.astype(np.int64)),
                   torch.from_numpy(np.ascontiguousarray(test_x)),
                   torch.from_numpy(test_y.astype(np.int64)),
                   InputSpec(tuple(tx.shape[1:]), num_classes, vocab))


def _digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    x = x[:, None, :, :]
    return _bundle(*_split(x, digits.target, seed), num_classes=10)


def _synthetic(seed: int, text: bool, large: bool) -> Dataset:
    rng = np.random.default_rng(seed)
    classes, n = 4, 640
    y = rng.integers(0, classes, n)
    if text:
        ids = rng.integers(10, 1000, (n, 32))
        ids[:, 0] = 1
        ids[np.arange(n), rng.integers(1, 32, n)] = 2 + y  # one token names the class
        return _bundle(*_split(ids.astype(np.int64), y, seed), num_classes=classes, vocab=1000)
    shape = (3, 32, 32) if large else (1, 8, 8)
    prototypes = rng.normal(0, 1, (classes, *shape)).astype(np.float32)
    x = prototypes[y] + rng.normal(0, 1.0, (n, *shape)).astype(np.float32)
    return _bundle(*_split(x, y, seed), num_classes=classes)


def _missing(name: str, looked: list[Path], how: str) -> ConfigError:
    where = ", ".join(str(p) for p in looked)
    return ConfigError(Violation("dataset", f"CURRENT_DATASET={name}: not found (looked for "
                                            f"{where}); {how}"))


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(directories: list[Path], name: str) -> Path | None:
    for directory in directories:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.exists():
                return candidate
    return None


def _mnist(root: Path, download: bool) -> Dataset:
    dirs = [root / "MNIST" / "raw", root / "MNIST", root / "mnist", root]
    if download and _find(dirs, _MNIST_FILES[0]) is None:
        (root / "MNIST").mkdir(parents=True, exist_ok=True)
        for name in _MNIST_FILES:
            urllib.request.urlretrieve(f"{_MNIST_URL}{name}.gz", root / "MNIST" / f"{name}.gz")
    paths = [_find(dirs, name) for name in _MNIST_FILES]
    if any(p is None for p in paths):
        raise _missing("MNIST", dirs, "put the four idx files (e.g. train-images-idx3-ubyte.gz) "
                       f"in {root / 'MNIST'}, or set DATASET_DOWNLOAD=true")
    arrays = [_read_idx(p) for p in paths if p is not None]

    def scale(a: np.ndarray) -> np.ndarray:
        return ((a.astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]

    return _bundle(scale(arrays[0]), arrays[1], scale(arrays[2]), arrays[3], num_classes=10)


_CIFAR = {
    "CIFAR10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)],
                ["test_batch.bin"], 1, 10, "cifar-10-binary.tar.gz"),
    "CIFAR100": ("cifar-100-binary", ["train.bin"], ["test.bin"], 2, 100,
                 "cifar-100-binary.tar.gz"),
}


def _read_cifar(paths: list[Path], label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.concatenate([np.fromfile(p, dtype=np.uint8) for p in paths])
    records = raw.reshape(-1, label_bytes + 3072)
    x = records[:, label_bytes:].reshape(-1, 3, 32, 32).astype(np.float32)
    return (x / 255.0 - 0.5) / 0.5, records[:, label_bytes - 1].astype(np.int64)


def _cifar(root: Path, name: str, download: bool) -> Dataset:
    folder, train_files, test_files, label_bytes, classes, archive = _CIFAR[name]
    directory = root / folder
    if download and not directory.exists():
        import tarfile

        root.mkdir(parents=True, exist_ok=True)
        target = root / archive
        urllib.request.urlretrieve(f"https://www.cs.toronto.edu/~kriz/{archive}", target)
        with tarfile.open(target) as tar:
            tar.extractall(root, filter="data")
    missing = [directory / f for f in train_files + test_files if not (directory / f).exists()]
    if missing:
        raise _missing(name, missing[:2], f"unpack {archive} into {root}, or set "
                       "DATASET_DOWNLOAD=true")
    train = _read_cifar([directory / f for f in train_files], label_bytes)
    test = _read_cifar([directory / f for f in test_files], label_bytes)
    return _bundle(train[0], train[1], test[0], test[1], num_classes=classes)


def tokenize(text: str, seq_len: int = SEQ_LEN) -> list[int]:
    """Hash words into ids 2..VOCAB_SIZE-1 after a leading 1 ([CLS]); pad with 0."""
    words = text.lower().replace("<br />", " ").split()
    hashed = [2 + zlib.crc32(w.strip(".,!?;:\"'()").encode()) % (VOCAB_SIZE - 2) for w in words]
    ids = [1, *hashed[: seq_len - 1]]
    return ids + [0] * (seq_len - len(ids))


def _text_bundle(train: list[tuple[str, int]], test: list[tuple[str, int]], classes: int) -> (
        Dataset):
    def encode(rows: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
        x = np.array([tokenize(t) for t, _ in rows], dtype=np.int64).reshape(-1, SEQ_LEN)
        return x, np.array([label for _, label in rows], dtype=np.int64)

    return _bundle(*encode(train), *encode(test), num_classes=classes, vocab=VOCAB_SIZE)


def _ag_news(root: Path) -> Dataset:
    directory = root / "ag_news"
    paths = [directory / "train.csv", directory / "test.csv"]
    if not all(p.exists() for p in paths):
        raise _missing("AG_NEWS", paths, "provide train.csv and test.csv (class 1-4, title, "
                       "description) there")

    def read(path: Path) -> list[tuple[str, int]]:
        with path.open(newline="", encoding="utf-8") as handle:
            return [(" ".join(row[1:]), int(row[0]) - 1) for row in csv.reader(handle) if row]

    return _text_bundle(read(paths[0]), read(paths[1]), classes=4)


def _imdb(root: Path) -> Dataset:
    directory = root / "aclImdb"
    if not (directory / "train" / "pos").is_dir():
        raise _missing("IMDB", [directory / "train" / "pos"], "unpack aclImdb_v1.tar.gz there")

    def read(split: str) -> list[tuple[str, int]]:
        rows = []
        for label, sentiment in enumerate(("neg", "pos")):
            for path in sorted((directory / split / sentiment).glob("*.txt")):
                rows.append((path.read_text(encoding="utf-8", errors="replace"), label))
        return rows

    return _text_bundle(read("train"), read("test"), classes=2)
