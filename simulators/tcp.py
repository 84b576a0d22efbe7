"""A device's dial-out TCP link: bytes in from a simulator, to a platform host:port, replies back out."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from gateway.aio import cancel_and_wait

# Bytes the link may hold for a platform that does not read before it drops new frames.
MAX_BUFFERED: Final = 64 * 1024
_BACKOFF_S: Final = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(slots=True)
class LinkStats:
    """What happened on the link: bytes sent, bytes dropped and why, connections made."""

    written: int = 0
    dropped_disconnected: int = 0
    dropped_full: int = 0
    connects: int = 0
    connect_failures: int = 0
    unplugs: int = 0
    replugs: int = 0


class TcpLink:
    """A client connection that a station keeps dialling, like a DTU: writes never block, drops count.

    Use as `async with TcpLink(host, port) as link:`; `await link.connected.wait()` to know it is up.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.stats = LinkStats()
        self.connected = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)
        self._enabled = asyncio.Event()
        self._enabled.set()
        self._task: asyncio.Task[None] | None = None

    def write(self, data: bytes) -> int:
        """Queue `data` on the connection; drop it (counted) when down or when the platform lags."""
        writer = self._writer
        if writer is None or writer.is_closing():
            self.stats.dropped_disconnected += len(data)
            return 0
        if writer.transport.get_write_buffer_size() + len(data) > MAX_BUFFERED:
            self.stats.dropped_full += len(data)
            return 0
        writer.write(data)
        self.stats.written += len(data)
        return len(data)

    async def read(self) -> bytes:
        """Return the next bytes the platform sent; b"" when a connection ends."""
        return await self._inbox.get()

    def unplug(self) -> None:
        """Drop the connection and stop dialling until `replug`."""
        self._enabled.clear()
        self._close()
        self.stats.unplugs += 1

    def replug(self) -> None:
        """Start dialling again."""
        if not self._enabled.is_set():
            self._enabled.set()
            self.stats.replugs += 1

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        self.connected.clear()
        if writer is not None:
            writer.close()

    async def _run(self) -> None:
        """Dial, read replies until the connection ends, back off and dial again."""
        failures = 0
        while True:
            await self._enabled.wait()
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.stats.connect_failures += 1
                await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1
                continue
            failures = 0
            self.stats.connects += 1
            self._writer = writer
            self.connected.set()
            try:
                while data := await reader.read(4096):
                    self._deliver(data)
            except OSError:
                pass
            finally:
                if self._writer is writer:
                    self._close()
                self._deliver(b"")

    def _deliver(self, data: bytes) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(data)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=f"tcp link {self.host}:{self.port}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()
        if self._task is not None:
            await cancel_and_wait(self._task)
