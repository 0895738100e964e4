"""Secure aggregation of replicas: pairwise masks in a modular ring (Bonawitz et al., SecAgg).

What a client sends the aggregator for partition p is ``encode(Σ_o n_o · θ_{o,p}) + Σ_j ±m_ij``
in the ring of integers modulo 2^64: its replicas of p, weighted by their owners' sample counts
``n_o`` *before* masking, in fixed point with :data:`FRACTION_BITS` fractional bits, plus one mask
per other client j that also holds replicas of p (added when this client's number is the smaller
of the pair, subtracted otherwise). Both ends of a pair expand the same mask from the seed they
agreed on (X25519 + HKDF-SHA256, :func:`pair_seed`) with ChaCha20, bound to the round, the
partition, the tensor's name and the run's incarnation, so masks cancel exactly in the sum and
are never reused for another value. The aggregator adds every client's payload modulo 2^64
(:func:`unmask_sum`) and learns only Σ_o n_o · θ_{o,p}; one client's payload alone is uniformly
random. Dividing by Σ_o n_o gives plain FedAvg up to the fixed-point rounding (≤ 2^-31 absolute
per client and value, divided by the total weight).

Pure functions, no I/O: the node (``node/secagg.py``) holds the keys and wires it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from splitnet.learning.keys import StateKey

__all__ = ["FRACTION_BITS", "masked_sum", "pair_seed", "unmask_sum"]

FRACTION_BITS = 30
_SCALE = float(2 ** FRACTION_BITS)
_LIMIT = float(2 ** (62 - FRACTION_BITS))  # |weighted sum| below this cannot wrap the ring


def pair_seed(mine: X25519PrivateKey, theirs: bytes, low: int, high: int, salt: str) -> bytes:
    """Return the 32-byte seed clients ``low`` < ``high`` share (X25519, then HKDF-SHA256)."""
    secret = mine.exchange(X25519PublicKey.from_public_bytes(theirs))
    info = f"splitnet secure aggregation {low}-{high} {salt}".encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(secret)


def _mask(seed: bytes, round_: int, key: str, count: int) -> np.ndarray:
    """Return ``count`` uniform uint64 values expanded from ``seed`` for ``key`` of ``round_``."""
    nonce = hashlib.sha256(f"{round_}/{key}".encode()).digest()[:16]
    stream = Cipher(algorithms.ChaCha20(seed, nonce), mode=None).encryptor()
    return np.frombuffer(stream.update(bytes(8 * count)), dtype=np.uint64)


def masked_sum(states: Mapping[str, torch.Tensor], weights: Mapping[int, int],
               seeds: Mapping[int, bytes], holders: Mapping[int, Iterable[int]], me: int,
               round_: int) -> dict[str, torch.Tensor]:
    """Return this client's masked, weighted sums, keyed ``partition/name`` (int64 bit patterns).

    ``states`` holds the client's replicas (``owner/partition/name``), ``weights`` every owner's
    sample count, ``seeds`` the seed shared with each other client, and ``holders[p]`` the
    clients holding replicas of partition p. ValueError for an owner without a weight, a
    missing seed, or a sum too large for the ring.
    """
    sums: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for text, tensor in sorted(states.items()):
        key = StateKey.parse(text)
        if key.owner is None or key.owner not in weights:
            raise ValueError(f"replica {text!r} has no owner weight")
        value = tensor.detach().to(torch.float64).numpy().reshape(-1) * float(weights[key.owner])
        name = f"{key.partition}/{key.name}"
        sums[name] = sums[name] + value if name in sums else value
        shapes[name] = tuple(tensor.shape)
    out: dict[str, torch.Tensor] = {}
    for name, total in sums.items():
        if total.size and float(np.abs(total).max()) >= _LIMIT:
            raise ValueError(f"{name}: a weighted sum of {float(np.abs(total).max()):.3g} is too "
                             f"large for secure aggregation's ring (limit {_LIMIT:.3g})")
        ring = np.round(total * _SCALE).astype(np.int64).view(np.uint64)
        partition = int(name.split("/", 1)[0])
        for other in sorted(set(holders[partition]) - {me}):
            if other not in seeds:
                raise ValueError(f"no agreed seed with client {other} for partition {partition}")
            mask = _mask(seeds[other], round_, name, ring.size)
            ring = ring + mask if me < other else ring - mask  # modulo 2^64
        out[name] = torch.from_numpy(ring.view(np.int64).reshape(shapes[name]).copy())
    return out


def unmask_sum(payloads: Iterable[Mapping[str, torch.Tensor]], total_weight: float,
               dtypes: Mapping[str, torch.dtype]) -> dict[str, torch.Tensor]:
    """Add every client's masked payload modulo 2^64; return the weighted average per key.

    ``total_weight`` is Σ_o n_o; ``dtypes`` the dtype of each ``partition/name``. Integer
    buffers are rounded, as in :func:`~splitnet.learning.averaging.fedavg`.
    """
    sums: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for payload in payloads:
        for name, tensor in payload.items():
            ring = tensor.numpy().reshape(-1).view(np.uint64)
            sums[name] = sums[name] + ring if name in sums else ring.copy()
            shapes[name] = tuple(tensor.shape)
    averaged: dict[str, torch.Tensor] = {}
    for name in sorted(sums):
        value = sums[name].view(np.int64).astype(np.float64) / _SCALE / total_weight
        tensor = torch.from_numpy(value.reshape(shapes[name]))
        dtype = dtypes[name]
        averaged[name] = tensor.to(dtype) if dtype.is_floating_point else \
            tensor.round().to(dtype)
    return averaged
