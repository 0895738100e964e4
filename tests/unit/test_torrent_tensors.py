"""The BitTorrent tensor transport's failure path, with a swarm that cannot publish (no sockets)."""

import asyncio

import torch

from splitnet.errors import TransferFailed
from splitnet.transport.messages import TaskMessage
from splitnet.transport.torrent_tensors import TorrentTensors


class _FullDisk:
    def publish(self, name, data):
        raise OSError(28, "No space left on device")


class _Swarm:
    session = _FullDisk()


class _Peer:
    address = "10.0.0.2:50051"


def test_a_publish_that_fails_reaches_on_failure_naming_the_peer_and_the_task():
    failures: list[TransferFailed] = []

    async def main():
        transport = TorrentTensors({2: _Peer()}, _Swarm(), timeout=1.0)
        transport.start(failures.append)
        transport.send(2, TaskMessage(1, 2, 7, 0, 1, torch.ones(3)))
        for _ in range(100):
            if failures:
                break
            await asyncio.sleep(0.01)
        await transport.aclose()

    asyncio.run(main())
    assert len(failures) == 1, failures
    text = str(failures[0])
    assert "client 2" in text and "1_2" in text and "batch 7" in text, text
    assert isinstance(failures[0].__cause__, OSError)
