"""Tensors as raw little-endian bytes plus a (dtype, shape) header; never pickle.

``encode_tensor``/``decode_tensor`` are the only way tensors cross the wire. Decoding checks the
header first (dtype allow-list, non-negative shape, byte length equal to what the shape needs,
size limit) and raises :class:`~splitnet.errors.ProtocolError` naming the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from splitnet.errors import ProtocolError

__all__ = ["DTYPES", "MAX_TENSOR_BYTES", "TensorMeta", "check_meta", "decode_tensor",
           "encode_tensor", "tensor_meta", "tensor_view"]

MAX_TENSOR_BYTES = 2 * 1024**3
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
    "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}


@dataclass(frozen=True)
class TensorMeta:
    """A tensor's dtype name, shape and byte length."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int


def tensor_meta(tensor: torch.Tensor) -> TensorMeta:
    """Return the header of ``tensor`` (ProtocolError for a dtype that may not be sent)."""
    if tensor.dtype not in _NAMES:
        raise ProtocolError(f"dtype {tensor.dtype} cannot be sent; allowed: {', '.join(DTYPES)}")
    return TensorMeta(_NAMES[tensor.dtype], tuple(tensor.shape),
                      tensor.numel() * tensor.element_size())


def tensor_view(tensor: torch.Tensor) -> memoryview:
    """Return ``tensor``'s raw bytes without copying a contiguous CPU tensor."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")  # type: ignore[arg-type]


def encode_tensor(tensor: torch.Tensor) -> tuple[TensorMeta, bytes]:
    """Return the header and raw bytes of ``tensor`` (made contiguous, on CPU)."""
    meta = tensor_meta(tensor)
    return meta, tensor_view(tensor).tobytes()


def check_meta(meta: TensorMeta, limit: int = MAX_TENSOR_BYTES) -> torch.dtype:
    """Validate a header before any data is read; return its torch dtype."""
    dtype = DTYPES.get(meta.dtype)
    if dtype is None:
        raise ProtocolError(f"dtype {meta.dtype!r} is not allowed; allowed: {', '.join(DTYPES)}")
    if any(d < 0 for d in meta.shape) or len(meta.shape) > 16:
        raise ProtocolError(f"shape {list(meta.shape)} is invalid (negative or over 16 dims)")
    expected = math.prod(meta.shape) * torch.empty((), dtype=dtype).element_size()
    if expected != meta.nbytes:
        raise ProtocolError(f"header says {meta.nbytes} bytes but shape {list(meta.shape)} of "
                            f"{meta.dtype} needs {expected}")
    if meta.nbytes > limit:
        raise ProtocolError(f"tensor of {meta.nbytes} bytes exceeds the limit of {limit}")
    return dtype


def decode_tensor(meta: TensorMeta, data: bytes | bytearray) -> torch.Tensor:
    """Rebuild a tensor from its header and bytes, checking both."""
    dtype = check_meta(meta)
    if len(data) != meta.nbytes:
        raise ProtocolError(f"received {len(data)} bytes but the header says {meta.nbytes}")
    if meta.nbytes == 0:
        return torch.empty(meta.shape, dtype=dtype)
    writable = data if isinstance(data, bytearray) else bytearray(data)  # torch needs writable
    return torch.frombuffer(writable, dtype=dtype).reshape(meta.shape)
