"""A seeded wire fuzzer: mutated frames to one client's gRPC and direct-channel listeners.

The fuzzer is an authenticated peer and talks only to loopback: it holds the cluster token, or
(with TLS) certificates of the cluster CA for client numbers outside the plan, one per stranger
number it claims, so every input reaches the listener after a completed TLS handshake.
Its corpus is valid frames of every gRPC method it may send and of the direct channel, built
with the project's own encoders (``task_header``, ``blob_to_frames``, the channel's ``HELLO``
and ``U32`` framing); each input is one corpus item mutated by bit flips, byte insertions and
deletions, truncation, varint/length corruption, splicing with another item, an oversized
length prefix or a duplicated frame. Everything comes from one ``random.Random(seed)`` and the
number of inputs per listener is fixed; every call has a deadline.

Note: admissible impersonation. With a shared token a peer that claims a member's number is
indistinguishable from that member (identities from certificates are another issue), so a
mutant that decodes to a message the plan admits would really change training. To keep "the
run ends as an undisturbed one does" meaningful, the fuzzer only claims numbers that are not
members (``num_clients + 1`` and up) in Join, Ping, RoundDone, tensor headers and channel
hellos, and a mutant is dropped (and another drawn) when the project's own decoders read it as

* a JoinRequest, RoundDoneRequest or Finish (NoticeRequest) from a member, or
* a tensor header (``TaskHeader``, on either listener) from a member for a round the run can
  reach (up to ``rounds + 1``).

Not sent: Abort (a member's abort stops the run by design). Finish is sent as a non-member; the
receiver takes it only from the aggregator.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import torch
from google.protobuf.message import DecodeError

from splitnet.transport.codec import tensor_view
from splitnet.transport.generated import splitnet_pb2 as pb
from splitnet.transport.inbound import HELLO, MAGIC, U32, VERSION, proof
from splitnet.transport.messages import Blob, TaskMessage
from splitnet.transport.serde import blob_to_frames, task_header
from splitnet.transport.tls import Identity, client_name
from tests.integration.mutate import member_header, mutate

__all__ = ["FuzzReport", "Fuzzer"]

SERVICE = "/splitnet.v1.Peer/"
CALL_SECONDS = 20.0  # a call not answered by then counts as a hang
IDLE_SECONDS = 0.3  # with TLS, a connection's answers are over once none came for this long


@dataclass
class FuzzReport:
    """What one listener answered: sent inputs, gRPC codes or channel outcomes, hangs."""

    sent: int = 0
    dropped: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    hangs: list[str] = field(default_factory=list)


class Fuzzer:
    """Mutated inputs for client ``target`` of a plan of ``num_clients`` and ``rounds``."""

    def __init__(self, seed: int, token: str, num_clients: int, rounds: int,
                 identities: dict[int, Identity] | None = None, target: int = 0) -> None:
        self.rng = random.Random(seed)
        self.token = token
        self.identities = identities or {}  # TLS: a certificate per stranger number
        self.target = target  # with TLS, the client whose certificate the listener must show
        self.members = range(1, num_clients + 1)
        self.rounds = rounds
        self.stranger = num_clients + 1
        self.tasks = self._tasks()
        self.metadata = (("authorization", f"Bearer {token}"),) if not identities else ()

    def _tasks(self) -> list[TaskMessage]:
        gen = torch.Generator().manual_seed(self.rng.randrange(2**31))
        tensors = [torch.randn(shape, generator=gen) for shape in [(2, 3), (8, 16, 7, 7), (4,)]]
        tensors.append(torch.arange(6, dtype=torch.int64))
        stranger, far = self.stranger, self.rounds + 50
        return [TaskMessage(owner, stage, batch, round_, sender, t)
                for t in tensors
                for owner, stage, batch, round_, sender in [
                    (1, 2, 0, 1, stranger), (2, 3, 5, 2, stranger), (1, 1, 3, far, 1),
                    (3, 4, 1, far, 2)]]

    # -- gRPC -------------------------------------------------------------------------------

    def _unary_corpus(self) -> list[tuple[str, bytes]]:
        s = self.stranger
        return [
            ("Join", pb.JoinRequest(client=s, fingerprint="f" * 64, facts_json=json.dumps(
                {"num_clients": 3, "model": "CNN"}), torrent_port=1, tensor_port=2)
             .SerializeToString()),
            ("Ping", pb.PingRequest(client=s).SerializeToString()),
            ("RoundDone", pb.RoundDoneRequest(client=s, round=1, stats_json=json.dumps(
                {"batches": 3, "loss": 0.5})).SerializeToString()),
            ("GetStates", pb.StatesRequest(round=1).SerializeToString()),
            ("Finish", pb.NoticeRequest(client=s, reason="done").SerializeToString()),
        ]

    def _stream_corpus(self) -> list[tuple[str, list[bytes]]]:
        items: list[tuple[str, list[bytes]]] = []
        for msg in self.tasks:
            data = bytes(tensor_view(msg.tensor)) if msg.tensor is not None else b""
            frame = pb.TensorFrame(header=task_header(msg), data=data).SerializeToString()
            split = [pb.TensorFrame(header=task_header(msg), data=data[:len(data) // 2])
                     .SerializeToString(),
                     pb.TensorFrame(data=data[len(data) // 2:]).SerializeToString()]
            items += [("SendTensor", [frame]), ("TensorStream", [frame, frame]),
                      ("SendTensor", split)]
        blob = Blob("average", 1, self.stranger, self.rng.randbytes(300), {"partitions": [1]})
        items.append(("PutModel", [f.SerializeToString() for f in blob_to_frames(blob)]))
        return items

    def _admissible(self, method: str, frames: list[bytes]) -> bool:
        for data in frames:
            if method in ("Join", "RoundDone", "Finish"):
                request = {"Join": pb.JoinRequest, "RoundDone": pb.RoundDoneRequest,
                           "Finish": pb.NoticeRequest}[method]
                try:
                    if request.FromString(data).client in self.members:
                        return True
                except DecodeError:
                    pass
            elif method in ("SendTensor", "TensorStream"):
                try:
                    frame = pb.TensorFrame.FromString(data)
                except DecodeError:
                    continue
                if frame.HasField("header") and member_header(
                        frame.header.SerializeToString(), self.members, self.rounds):
                    return True
        return False

    def grpc_input(self, report: FuzzReport) -> tuple[str, list[bytes]]:
        """Draw one mutated gRPC input: (method, request bytes or frames)."""
        unary, stream = self._unary_corpus(), self._stream_corpus()
        flat = [d for _, d in unary] + [f for _, fs in stream for f in fs]
        while True:
            if self.rng.random() < 0.4:
                method, item = self.rng.choice(unary)
                frames = [mutate(self.rng, item, flat)]
            else:
                method, base = self.rng.choice(stream)
                frames = list(base)
                at = self.rng.randrange(len(frames))
                frames[at] = mutate(self.rng, frames[at], flat)
                if self.rng.random() < 0.1:
                    frames.insert(at, frames[at])  # a duplicated frame
            if not self._admissible(method, frames):
                return method, frames
            report.dropped += 1

    async def fuzz_grpc(self, address: str, count: int, workers: int = 4) -> FuzzReport:
        """Send ``count`` mutated inputs to the gRPC listener at ``address``."""
        report = FuzzReport()
        inputs = [self.grpc_input(report) for _ in range(count)]
        async with self._grpc_channel(address) as channel:
            calls: dict[str, Callable[..., object]] = {
                "Join": channel.unary_unary(SERVICE + "Join"),
                "Ping": channel.unary_unary(SERVICE + "Ping"),
                "RoundDone": channel.unary_unary(SERVICE + "RoundDone"),
                "Finish": channel.unary_unary(SERVICE + "Finish"),
                "GetStates": channel.unary_stream(SERVICE + "GetStates"),
                "SendTensor": channel.stream_unary(SERVICE + "SendTensor"),
                "TensorStream": channel.stream_stream(SERVICE + "TensorStream"),
                "PutModel": channel.stream_unary(SERVICE + "PutModel"),
            }

            async def one(method: str, frames: list[bytes]) -> None:
                call: object = calls[method]
                try:
                    if method in ("Join", "Ping", "RoundDone", "Finish"):
                        await call(frames[0], metadata=self.metadata,  # type: ignore[operator]
                                   timeout=CALL_SECONDS)
                    elif method == "GetStates":
                        async for _ in call(frames[0], metadata=self.metadata,  # type: ignore[operator]
                                            timeout=CALL_SECONDS):
                            pass
                    elif method == "TensorStream":
                        async for _ in call(iter(frames), metadata=self.metadata,  # type: ignore[operator]
                                            timeout=CALL_SECONDS):
                            pass
                    else:
                        await call(iter(frames), metadata=self.metadata,  # type: ignore[operator]
                                   timeout=CALL_SECONDS)
                    report.outcomes[f"{method} OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    if "SendMessageOperation" in (exc.debug_error_string() or ""):
                        # the listener ended the call (refusing a frame) while this side was
                        # still sending later frames: grpc reports INTERNAL here, not there
                        report.outcomes[f"{method} ended before all frames were sent"] += 1
                        report.sent += 1
                        return
                    report.outcomes[f"{method} {code.name}"] += 1
                    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                        report.hangs.append(f"{method} {[f.hex() for f in frames]}")
                report.sent += 1

            async def worker(mine: list[tuple[str, list[bytes]]]) -> None:
                for method, frames in mine:
                    await one(method, frames)

            await asyncio.gather(*(worker(inputs[k::workers]) for k in range(workers)))
        return report

    def _grpc_channel(self, address: str) -> grpc.aio.Channel:
        if not self.identities:
            return grpc.aio.insecure_channel(address)
        me = self.identities[self.stranger]
        credentials = grpc.ssl_channel_credentials(me.ca_pem, me.key_pem, me.cert_pem)
        return grpc.aio.secure_channel(address, credentials, options=[
            ("grpc.ssl_target_name_override", client_name(self.target))])

    # -- direct channel -----------------------------------------------------------------------

    def _channel_corpus(self) -> list[bytes]:
        items = []
        for msg in self.tasks:
            header = task_header(msg).SerializeToString()
            data = bytes(tensor_view(msg.tensor)) if msg.tensor is not None else b""
            items.append(U32.pack(len(header)) + header + data)
        return items

    def channel_input(self, report: FuzzReport) -> bytes:
        """Draw one mutated direct-channel message (length, header, data)."""
        corpus = self._channel_corpus()
        while True:
            frame = mutate(self.rng, self.rng.choice(corpus), corpus)
            if self.rng.random() < 0.1:  # an oversized length prefix
                frame = U32.pack(self.rng.choice([2**32 - 1, 2**31, 65 * 1024])) + frame[4:]
            (n,) = U32.unpack(frame[:4]) if len(frame) >= 4 else (0,)
            if not member_header(frame[4:4 + n], self.members, self.rounds):
                return frame
            report.dropped += 1

    def hello(self, number: int) -> bytes:
        """Return a hello from client ``number``; one in twenty is corrupted."""
        hello = HELLO.pack(MAGIC, VERSION, number,
                           bytes(32) if self.identities else proof(self.token))
        return mutate(self.rng, hello, [hello]) if self.rng.random() < 0.05 else hello

    async def fuzz_channel(self, host: str, port: int, count: int,
                           per_connection: int | None = None, workers: int = 4) -> FuzzReport:
        """Send ``count`` mutated messages to the direct channel at ``host:port``.

        Each connection says hello as a non-member (its own number, so connections do not
        replace each other), then writes up to ``per_connection`` messages; everything the
        listener answers is read and counted.
        """
        report = FuzzReport()
        per_connection = per_connection or (32 if self.identities else 8)  # fewer handshakes
        batches = []
        while sum(len(b) for _, _, b in batches) < count:
            k = len(batches)
            number = self.stranger + k % workers
            batches.append((number, self.hello(number),
                            [self.channel_input(report) for _ in range(per_connection)]))

        async def connection(number: int, hello: bytes, frames: list[bytes]) -> None:
            identity = self.identities.get(number)
            reader, writer = await asyncio.open_connection(
                host, port, ssl=identity.client_context() if identity else None,
                server_hostname=client_name(self.target) if identity else None)
            try:
                writer.write(hello)
                for frame in frames:
                    writer.write(frame)
                    report.sent += 1
                if writer.can_write_eof():
                    writer.write_eof()
                # TLS has no half-close: the answers end when none comes for IDLE_SECONDS
                await asyncio.wait_for(_drain_answers(reader, report,
                                                      IDLE_SECONDS if identity else None),
                                       CALL_SECONDS)
            except TimeoutError:
                report.hangs.append(f"hello {hello.hex()} frames {[f.hex() for f in frames]}")
            except OSError as exc:
                report.outcomes[type(exc).__name__] += 1
            finally:
                writer.close()

        async def worker(mine: list[tuple[int, bytes, list[bytes]]]) -> None:
            for number, hello, frames in mine:
                await connection(number, hello, frames)

        await asyncio.gather(*(worker(batches[k::workers]) for k in range(workers)))
        return report


async def _drain_answers(reader: asyncio.StreamReader, report: FuzzReport,
                         idle: float | None = None) -> None:
    """Read the hello answer and refusals until the listener closes the connection.

    With ``idle`` (TLS, where the fuzzer cannot half-close its side): or until no answer
    comes for ``idle`` seconds.
    """
    first = True
    while True:
        try:
            (n,) = U32.unpack(await asyncio.wait_for(reader.readexactly(4), idle))
            body = await reader.readexactly(n)
        except asyncio.IncompleteReadError:
            report.outcomes["closed"] += 1
            return
        except TimeoutError:
            report.outcomes["no more answers"] += 1
            return
        if first:
            report.outcomes["hello refused" if n else "hello accepted"] += 1
            first = False
            continue
        try:
            report.outcomes[f"refused {json.loads(body).get('kind')}"] += 1
        except ValueError:
            report.outcomes["unreadable answer"] += 1
