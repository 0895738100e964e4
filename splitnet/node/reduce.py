"""Decentralised FedAvg (``AGGREGATION=reduce``): each partition's holders average it themselves.

The holders of partition p are the clients that run some owner's partition p (ascending). Each
cuts p into one chunk per holder (:func:`~splitnet.learning.chunks.chunk_ranges`), then:

1. reduce-scatter: every holder sends each other holder the slices of the chunk that holder
   reduces, one per replica of p it holds (never pre-summed), in one ``reduce-scatter`` blob per
   peer (every partition the two share);
2. each holder averages its chunks (Note: bit-exact reduce, :mod:`splitnet.learning.chunks`);
3. all-gather: every holder sends each other holder its averaged chunks (``all-gather`` blob);
4. each holder reassembles its partitions and loads them into its replicas.

A holder moves about 2·(n-1)/n·S per partition of size S each way, whatever the number of owners.
The aggregator starts it (its states pull, with every owner's sample count) and receives only
what it does not hold itself, each partition once as its holders' reduced chunks
(:meth:`Reducer.reported`, :func:`merge`), to evaluate and checkpoint.

Note: chunks refused. A chunk is taken only for the round whose model this client awaits, from
a holder of a partition this client holds too, once per (kind, sender), as safetensors bytes
with exactly the expected keys, 1-D slices of the expected lengths and dtypes, all finite; all
is checked before it is stored, so a refused chunk (ProtocolError, the peer gets
INVALID_ARGUMENT) changes nothing and the round goes on.

Note: masked chunks. With ``SECURE_AGGREGATION=on`` a holder sends no replica: it masks its
weighted sum of each partition as for the central aggregator (:mod:`splitnet.node.secagg`, masks
agreed with the partition's other holders) and cuts that into the chunks. The reducer of a chunk
adds every holder's masked chunk modulo 2^64, where the masks cancel elementwise, and decodes the
weighted sum: exactly the integers, and so the weights, that the central aggregator's sum gives.

Note: a lost holder. A holder waits for its peers' chunks at most the bulk timeout
(``TORRENT_TIMEOUT + PEER_TIMEOUT``); then it fails its node with PeerUnavailable naming the
missing clients, as a failed states pull does (``FAILURE_POLICY``: abort stops, drop restarts
the survivors from the last checkpoint with a derived plan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from splitnet.errors import PeerUnavailable, ProtocolError, RuntimeFailure
from splitnet.learning.chunks import assemble, chunk_ranges, cut
from splitnet.node.contributions import average_chunk, contributions
from splitnet.node.routing import Routing
from splitnet.node.secagg import SecureAggregation
from splitnet.node.state import Failure
from splitnet.plan.plan import Plan
from splitnet.runtime import Replicas
from splitnet.transport.messages import Blob

__all__ = ["GATHER", "SCATTER", "Reducer", "merge"]

log = logging.getLogger("splitnet.node")

SCATTER, GATHER = "reduce-scatter", "all-gather"  # blob kinds between holders
Tensors = dict[str, torch.Tensor]


class Reducer:
    """Client ``me``'s part in the reduce of each partition it holds."""

    def __init__(self, plan: Plan, me: int, replicas: Replicas, routing: Routing,
                 failure: Failure, awaited: Callable[[], int], *, timeout: float,
                 secagg: SecureAggregation | None = None) -> None:
        self.me = me
        self.server = plan.training.server_number
        self._replicas = replicas
        self._routing = routing
        self._failure = failure
        self._awaited = awaited
        self.timeout = timeout
        self.secagg = secagg  # SECURE_AGGREGATION=on: masked sums travel (Note: masked chunks)
        self.holders = plan.holders()
        self._at = {(o, p): plan.runner(o, p) for o in plan.owners for p in self.holders}
        self.mine = [p for p, holders in self.holders.items() if me in holders]
        self.shapes: dict[int, dict[str, tuple[int, ...]]] = {p: {} for p in self.holders}
        self.dtypes: dict[int, dict[str, torch.dtype]] = {p: {} for p in self.holders}
        for text, (shape, dtype) in replicas.model_spec.items():
            partition, name = text.split("/", 1)
            self.shapes[int(partition)][name] = shape
            self.dtypes[int(partition)][name] = dtype
        self._inbox: dict[tuple[str, int, int], Tensors] = {}  # (kind, round, sender)
        self._arrived = asyncio.Event()
        self._reduced: dict[int, Tensors] = {}  # the chunks of the last reduce, by partition

    def _ranges(self, p: int, holder: int) -> dict[str, tuple[int, int]]:
        holders = self.holders[p]
        return chunk_ranges(self.shapes[p], holders.index(holder), len(holders))

    def _shared(self, peer: int) -> list[int]:
        return [p for p in self.mine if peer in self.holders[p]]

    def peers(self) -> list[int]:
        """Return the clients this one exchanges chunks with."""
        return sorted({k for p in self.mine for k in self.holders[p]} - {self.me})

    def expected(self, kind: str, sender: int) -> dict[str, tuple[int, str]]:
        """Return the keys a ``kind`` blob from ``sender`` holds: each one's length and dtype."""
        keys: dict[str, tuple[int, str]] = {}
        for p in self._shared(sender):
            if kind == SCATTER and self.secagg is not None:  # one masked sum (int64 ring)
                ranges, prefixes = self._ranges(p, self.me), [f"{p}/"]
                keys.update({f"{p}/{name}": (b - a, str(torch.int64))
                             for name, (a, b) in ranges.items()})
                continue
            if kind == SCATTER:
                ranges, owners = self._ranges(p, self.me), [
                    o for (o, q), at in self._at.items() if q == p and at == sender]
                prefixes = [f"{o}/{p}/" for o in owners]
            else:
                ranges, prefixes = self._ranges(p, sender), [f"{p}/"]
            for prefix in prefixes:
                for name, (a, b) in ranges.items():
                    keys[prefix + name] = (b - a, str(self.dtypes[p][name]))
        return keys

    # -- incoming ------------------------------------------------------------------------------

    async def take(self, blob: Blob) -> None:
        """Store a peer's chunk blob after checking it whole (Note: chunks refused)."""
        what = f"client {self.me} refused a {blob.kind!r} chunk of round {blob.round} from " \
               f"client {blob.sender}"
        expected = self._check(what, blob)
        data = await self._routing.take(blob)
        self._check(what, blob)  # still awaited, still not there, after the fetch
        try:
            tensors = load_safetensors(data)
        except (SafetensorError, ValueError, RuntimeError, TypeError) as exc:
            raise ProtocolError(f"{what}: its bytes are not safetensors ({exc})") from None
        if tensors.keys() != expected.keys():
            missing, extra = sorted(expected.keys() - tensors.keys()), sorted(
                tensors.keys() - expected.keys())
            raise ProtocolError(f"{what}: it lacks {missing[:3]} and has extra {extra[:3]}")
        for key, tensor in tensors.items():
            length, dtype = expected[key]
            if tensor.dim() != 1 or tensor.numel() != length or str(tensor.dtype) != dtype:
                raise ProtocolError(f"{what}: {key} is {tuple(tensor.shape)} {tensor.dtype}, "
                                    f"expected ({length},) {dtype}")
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ProtocolError(f"{what}: {key} has non-finite values")
        self._inbox[(blob.kind, blob.round, blob.sender)] = tensors
        self._arrived.set()

    def _check(self, what: str, blob: Blob) -> dict[str, tuple[int, str]]:
        if blob.kind not in (SCATTER, GATHER):
            raise ProtocolError(f"{what}: unknown kind")
        if blob.round != self._awaited():
            raise ProtocolError(f"{what}: it reduces round {self._awaited()} now")
        if (blob.kind, blob.round, blob.sender) in self._inbox:
            raise ProtocolError(f"{what}: it has that client's chunk already")
        expected = self.expected(blob.kind, blob.sender) if blob.sender != self.me else {}
        if not expected:
            raise ProtocolError(f"{what}: that client holds no partition this one reduces")
        return expected

    async def _wait(self, kind: str, round_: int, deadline: float) -> dict[int, Tensors]:
        peers = self.peers()
        while True:
            missing = [k for k in peers if (kind, round_, k) not in self._inbox]
            if not missing:
                return {k: self._inbox.pop((kind, round_, k)) for k in peers}
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerUnavailable(
                    f"client {self.me}: no {kind} chunk of round {round_} from client(s) "
                    f"{', '.join(map(str, missing))} within {self.timeout:g}s (TORRENT_TIMEOUT "
                    "+ PEER_TIMEOUT)")
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    # -- the reduce ----------------------------------------------------------------------------

    async def reduce(self, round_: int, weights: Mapping[int, int]) -> Tensors:
        """Average this client's partitions with their holders; load them; return them.

        The result is keyed ``partition/name`` (the partitions this client holds). A lost
        peer fails this client's node as well (Note: a lost holder).
        """
        owners = sorted({o for o, _ in self._at})
        bad = [o for o in owners if type(weights.get(o)) is not int or not 0 < weights[o] <= 2**31]
        if bad or sorted(weights) != owners:
            raise ProtocolError(f"client {self.me} refused a reduce of round {round_}: sample "
                                f"counts {dict(weights)} must give every owner {owners} a whole "
                                "number 1..2^31, and nothing else")
        try:
            return await self._reduce(round_, {o: weights[o] for o in owners})
        except RuntimeFailure as exc:
            self._failure.fail(exc)
            raise

    async def _reduce(self, round_: int, weights: dict[int, int]) -> Tensors:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.timeout
        sources = contributions(self._replicas.states(), self.mine, self.secagg, weights, round_)
        peers = self.peers()
        log.info("client %d reduces round %d's partitions %s with client(s) %s", self.me,
                 round_, self.mine, peers)
        scatter = {k: {prefix + name: piece for p in self._shared(k)
                       for prefix, state in sources[p].items()
                       for name, piece in cut(state, self._ranges(p, k)).items()}
                   for k in peers}
        await self._send(SCATTER, round_, scatter)
        received = await self._wait(SCATTER, round_, deadline)
        reduced: dict[int, Tensors] = {}
        for p in self.mine:
            parts = {f"{self.me}:{prefix}": cut(state, self._ranges(p, self.me))
                     for prefix, state in sources[p].items()}
            for k, tensors in received.items():
                for text, piece in tensors.items():
                    prefix, name = text.rsplit("/", 1)[0] + "/", text.rsplit("/", 1)[1]
                    if prefix.split("/")[-2] == str(p):
                        parts.setdefault(f"{k}:{prefix}", {})[name] = piece
            reduced[p] = await loop.run_in_executor(None, average_chunk, parts, weights,
                                                    self.dtypes[p], self.secagg is not None)
        self._reduced = reduced
        await self._send(GATHER, round_, {k: {f"{p}/{name}": piece for p in self._shared(k)
                                              for name, piece in reduced[p].items()}
                                          for k in peers})
        gathered = await self._wait(GATHER, round_, deadline)
        averaged: Tensors = {}
        for p in self.mine:
            chunks: list[Tensors] = []
            for holder in self.holders[p]:
                source = reduced[p] if holder == self.me else {
                    text.split("/", 1)[1]: piece for text, piece in gathered[holder].items()
                    if text.startswith(f"{p}/")}
                chunks.append(source)
            whole = assemble(self.shapes[p], self.dtypes[p], chunks)
            averaged.update({f"{p}/{name}": tensor for name, tensor in whole.items()})
        if averaged:
            self._replicas.load_average(averaged)
        return averaged

    async def _send(self, kind: str, round_: int, payloads: Mapping[int, Tensors]) -> None:
        loop = asyncio.get_running_loop()

        async def one(peer: int, tensors: Tensors) -> None:
            data = await loop.run_in_executor(None, save_safetensors, tensors)
            blob = self._routing.bulk_out(kind, round_, data)
            await self._routing.push(peer, blob, len(data))

        await asyncio.gather(*(one(k, t) for k, t in payloads.items()))

    def reported(self, averaged: Tensors) -> Tensors:
        """Return what this client hands the aggregator of the partitions it reduced.

        The aggregator: its whole averaged partitions (``averaged``). Any other holder: the
        chunks it reduced of each partition the aggregator does not hold, so the aggregator
        receives each such partition once, spread evenly over its holders.
        """
        if self.me == self.server:
            return dict(averaged)
        return {f"{p}/{name}": piece for p in self.mine
                if self.server not in self.holders[p]
                for name, piece in self._reduced.get(p, {}).items()}


def merge(reducer: Reducer, answers: Mapping[int, Mapping[str, torch.Tensor]]) -> Tensors:
    """Return the whole averaged model from every client's :meth:`Reducer.reported`.

    Run on the aggregator (``reducer.me``). ProtocolError naming the partition when a holder's
    chunks do not fit.
    """
    merged: Tensors = {key: tensor for key, tensor in answers.get(reducer.me, {}).items()}
    for p, holders in reducer.holders.items():
        if reducer.me in holders:
            continue
        chunks = [{key.split("/", 1)[1]: tensor
                   for key, tensor in answers.get(holder, {}).items()
                   if key.split("/", 1)[0] == str(p)} for holder in holders]
        try:
            whole = assemble(reducer.shapes[p], reducer.dtypes[p], chunks)
        except ValueError as exc:
            raise ProtocolError(f"partition {p} from its holders {holders}: {exc}") from None
        merged.update({f"{p}/{name}": tensor for name, tensor in whole.items()})
    return merged

