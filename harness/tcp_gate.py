"""A TCP forwarder on a fixed 127.0.0.1 port that can be shut (every connection reset, the port
refusing) and opened again: the address of a model server that goes away and comes back.

Real TF Serving opens its gRPC port only once its models are loaded; the test stand-in listens
first and loads afterwards. Putting the gateway behind a gate that opens only when the
restarted stand-in is AVAILABLE reproduces what a gateway sees when real TF Serving restarts:
connection refused for the whole outage, then a server that is ready at once. The forwarder
runs its own event loop in a thread so it does not share one with the load client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from harness.processes import free_port

_CHUNK = 64 * 1024


class TcpGate:
    """Forward ``127.0.0.1:port`` to ``127.0.0.1:target_port`` while open."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()

    @property
    def target(self) -> str:
        """host:port to give the gateway."""
        return f"127.0.0.1:{self.port}"

    def open(self) -> None:
        """Listen (again) on the same port."""
        self._run(self._open())

    def shut(self) -> None:
        """Stop listening and reset every forwarded connection."""
        self._run(self._shut())

    def close(self) -> None:
        """Shut and stop the forwarder's thread."""
        self.shut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _run(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _open(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._forward, "127.0.0.1", self.port, reuse_address=True
            )

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        pair = {client_w.transport, server_w.transport}
        self._transports |= pair
        try:
            await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
        finally:
            self._transports -= pair
            for writer in (client_w, server_w):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF or a broken connection, then half-close the other side."""
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
