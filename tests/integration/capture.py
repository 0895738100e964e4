"""A recording TCP proxy on loopback: what a real sender wrote, to replay it later."""

from __future__ import annotations

import asyncio


class CapturingProxy:
    """Forwards connections to ``127.0.0.1:port``; keeps every byte the connecting side sent."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.captured = bytearray()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CapturingProxy:
        self._server = await asyncio.start_server(self._proxy, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0.1)

    @property
    def port(self) -> int:
        """Return the port the proxy listens on."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers.extend((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
            while data := await src.read(65536):
                if keep:
                    self.captured.extend(data)
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False),
                             return_exceptions=True)
        writer.close()
        up_writer.close()
