"""Mutations of wire bytes for the fuzzer (:mod:`tests.integration.fuzz`), and its filter."""

from __future__ import annotations

import random

from google.protobuf.message import DecodeError

from splitnet.transport.generated import splitnet_pb2 as pb

__all__ = ["member_header", "mutate"]


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """Return one mutation of ``data`` (which is kept unchanged)."""
    out = bytearray(data)
    kind = rng.randrange(8)
    if kind == 0 and out:  # bit flips
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # insert bytes
        at = rng.randint(0, len(out))
        out[at:at] = rng.randbytes(rng.randint(1, 16))
    elif kind == 2 and out:  # delete a range
        at = rng.randrange(len(out))
        del out[at:at + rng.randint(1, 16)]
    elif kind == 3:  # truncate
        del out[rng.randint(0, len(out)):]
    elif kind == 4 and out:  # varint/length corruption: continuation bits or a huge length
        at = rng.randrange(len(out))
        out[at:at + 1] = rng.choice([b"\xff" * rng.randint(1, 11), b"\xff\xff\xff\xff\x0f",
                                     b"\x80", b"\x00", bytes([rng.randrange(256)])])
    elif kind == 5:  # splice with another corpus item
        other = rng.choice(corpus)
        out = out[:rng.randint(0, len(out))] + other[rng.randint(0, len(other)):]
    elif kind == 6:  # a field announcing more bytes than exist (oversized length prefix)
        out[0:0] = bytes([rng.choice([0x0A, 0x12, 0x1A, 0x32, 0x3A])]) + b"\xff\xff\xff\xff\x07"
    else:  # duplicate
        out = out + out
    return bytes(out)


def member_header(data: bytes, members: range, rounds: int) -> bool:
    """Return whether ``data`` decodes to a tensor header a member could really send."""
    try:
        header = pb.TaskHeader.FromString(data)
    except DecodeError:
        return False
    return header.sender in members and header.round <= rounds + 1
