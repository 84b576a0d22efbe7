"""A gateway's cellular uplink as a TCP relay: bytes pass through until `cut()` drops and refuses them for a while."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

from gateway.aio import cancel_and_wait


class TcpRelay:
    """Relays 127.0.0.1:<port> to a target; `cut(seconds)` closes live connections and refuses new ones.

    `async with TcpRelay("127.0.0.1", broker_port) as link:` — point the client at `link.port`.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self.refused = 0
        self._down_until = 0.0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()

    @property
    def down(self) -> bool:
        """Whether the link is cut right now."""
        return asyncio.get_running_loop().time() < self._down_until

    def cut(self, seconds: float) -> None:
        """Drop every live connection and refuse new ones for `seconds`."""
        self._down_until = asyncio.get_running_loop().time() + seconds
        self.cuts += 1
        for writer in list(self._writers):
            writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        opened = [writer]
        try:
            if self.down:
                self.refused += 1
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                return
            opened.append(up_writer)
            self._writers |= {writer, up_writer}
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except asyncio.CancelledError:
            # Stopped by __aexit__. End normally: Python 3.11's start_server calls exception() on a finished
            # handler task, which raises for a cancelled one and logs "Exception in callback" (fixed in 3.12).
            pass
        finally:
            if handler is not None:
                self._handlers.discard(handler)
            self._writers -= set(opened)
            for w in opened:
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await cancel_and_wait(self._handlers)
            await self._server.wait_closed()
