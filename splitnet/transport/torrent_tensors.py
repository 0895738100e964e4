"""Activations and gradients over BitTorrent (``ACTIVATION_TRANSPORT=torrent``).

The sender publishes the tensor's bytes on its swarm and sends the reference (torrent metadata,
size, SHA-256, the tensor's header) in a ``SendTensor`` call; the receiver fetches the bytes
from the sender (:func:`fetch_reference`, through ``Network.complete``) before the message is
accepted, and the call returns once it
has; then the sender drops the torrent. ``send`` only queues: each transfer runs on its own, started
in the order they were queued, and any failure reaches ``on_failure`` as a
:class:`~splitnet.errors.TransferFailed` naming the peer and the task (Note: one failure path).
Slow (Note: connection tick, in torrent.py), but it exercises the swarm on every hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from splitnet.errors import ProtocolError, SplitnetError, TransferFailed
from splitnet.transport.base import AsyncClosing, Fail, report_failure
from splitnet.transport.client import PeerClient
from splitnet.transport.codec import decode_tensor, encode_tensor
from splitnet.transport.messages import TaskMessage
from splitnet.transport.status import not_a_peer, reported, task_label, transfer_failed
from splitnet.transport.swarm import Swarm
from splitnet.transport.torrent import TorrentRef

__all__ = ["TorrentTensors", "fetch_reference"]


class TorrentTensors(AsyncClosing):
    """Tensors published on the swarm and announced over gRPC (implements ``TensorTransport``)."""

    def __init__(self, peers: Mapping[int, PeerClient], swarm: Swarm, timeout: float) -> None:
        self._peers = peers
        self._swarm = swarm
        self._timeout = timeout
        self._on_failure: Fail | None = None
        self._transfers: set[asyncio.Task[None]] = set()

    def start(self, on_failure: Fail) -> None:
        """Report failures of later sends to ``on_failure``."""
        self._on_failure = on_failure

    def learn(self, peer: int, host: str, port: int) -> None:
        """Record nothing: the swarm learns the peer's torrent port (the bulk transport's)."""

    def send(self, peer: int, msg: TaskMessage) -> None:
        """Start moving ``msg`` to ``peer``; never raises."""
        transfer = asyncio.ensure_future(self._transfer(peer, msg))
        self._transfers.add(transfer)
        transfer.add_done_callback(self._transfers.discard)

    async def _transfer(self, peer: int, msg: TaskMessage) -> None:
        label = task_label(msg.owner, msg.stage, msg.batch)
        client = self._peers.get(peer)
        if client is None:
            self._fail(not_a_peer(peer, label))
            return
        assert msg.tensor is not None
        try:
            meta, data = encode_tensor(msg.tensor)
            ref = self._swarm.session.publish(f"act-{msg.owner}-{msg.stage}-{msg.batch}.bin",
                                              data)
        except Exception as exc:  # a dtype that may not be sent, a full disk, libtorrent
            self._fail(transfer_failed(peer, client.address, f"was not sent {label}", exc))
            return
        reference = TaskMessage(msg.owner, msg.stage, msg.batch, msg.round, msg.sender, None,
                                ref.to_json(), meta)
        try:
            await client.send_tensor(reference, timeout=self._timeout)
        except SplitnetError as exc:  # names the peer and the task
            self._fail(reported(exc))
        except Exception as exc:  # anything else ends this transfer too, never silently
            self._fail(transfer_failed(peer, client.address, f"did not take {label}", exc))
        finally:
            self._swarm.remove(ref.info_hash)

    def _fail(self, failure: TransferFailed) -> None:
        report_failure(self._on_failure, failure)

    async def aclose(self) -> None:
        """Cancel the transfers under way; idempotent."""
        transfers = list(self._transfers)
        for transfer in transfers:
            transfer.cancel()
        await asyncio.gather(*transfers, return_exceptions=True)


async def fetch_reference(msg: TaskMessage, me: int, swarm: Swarm | None) -> None:
    """Fill in ``msg.tensor`` when ``msg`` is a torrent reference, fetching from its sender.

    The message keeps its ``torrent`` (the receiver can tell how it came); a reference this
    client cannot fetch (no swarm, or an unknown sender) is refused with ProtocolError.
    """
    if msg.torrent is None:
        return
    assert msg.meta is not None
    if swarm is None or msg.sender not in swarm.addresses:
        raise ProtocolError(f"client {me} takes no activations over BitTorrent "
                            f"from client {msg.sender}")
    ref = TorrentRef.from_json(msg.torrent)
    if ref.size != msg.meta.nbytes:
        raise ProtocolError(f"torrent of {ref.size} bytes for a tensor of {msg.meta.nbytes}")
    try:
        data = await swarm.fetch(ref, [msg.sender])
    finally:
        swarm.remove(ref.info_hash)
    msg.tensor = decode_tensor(msg.meta, data)
