"""A pseudo-terminal port: bytes in from a simulator, out to a reader that opens a stable symlink path."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import tty
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from simulators.errors import PortError

# While nobody has the slave end open the master reports HUP on every poll; waiting for a reader to
# open it cannot be event-driven, so a read waits this long between looks.
_NO_PEER_POLL_S = 0.05


@dataclass(slots=True)
class PortStats:
    """What happened to the bytes a simulator wrote: sent, or dropped and why."""

    written: int = 0
    # The reader had the port open but did not read: the pty buffer (~20 KiB) was full.
    dropped_full: int = 0
    # Nobody had the port open: a real line would carry these bytes into the void as well.
    dropped_unheard: int = 0
    # The port was unplugged when the bytes were written.
    dropped_unplugged: int = 0
    unplugs: int = 0
    replugs: int = 0


class PtyPort:
    """One pseudo-terminal pair whose slave end is published at `link`, with unplug and replug.

    Writes never block: bytes the reader cannot take are dropped and counted in `stats`. With
    `hold_peer` the port keeps its own slave descriptor open, so bytes wait for a late reader instead
    of being dropped as unheard (a null-modem bridge needs that; a talking device does not).
    """

    def __init__(self, link: Path | str, *, baudrate: int | None = None, hold_peer: bool = False) -> None:
        self.link = Path(link)
        self.baudrate = baudrate
        self.hold_peer = hold_peer
        self.stats = PortStats()
        self._master: int | None = None
        self._peer: int | None = None
        self._device: str | None = None
        self._poll = select.poll()
        self._generation = 0
        self._wakeup: asyncio.Future[None] | None = None
        self._reading: int | None = None
        self._plugged = asyncio.Event()

    @property
    def device(self) -> str:
        """Return the current slave device path (`/dev/pts/N`)."""
        if self._device is None:
            raise PortError(f"{self.link}: port is unplugged")
        return self._device

    @property
    def plugged(self) -> bool:
        """Return True while a pty pair exists behind the link."""
        return self._master is not None

    def open(self) -> None:
        """Create a raw pty pair and point the link at its slave end."""
        if self._master is not None:
            raise PortError(f"{self.link}: port is already open")
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise PortError(f"{self.link}: cannot create a pseudo-terminal: {exc}") from exc
        try:
            device = os.ttyname(slave)
            # Raw mode survives the close below: no echo back into the master, no line editing.
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._point_link(device)
        except (OSError, PortError) as exc:
            os.close(master)
            os.close(slave)
            raise PortError(f"{self.link}: cannot set up the pseudo-terminal: {exc}") from exc
        if self.hold_peer:
            os.set_blocking(slave, False)
            self._peer = slave
        else:
            os.close(slave)
        self._master, self._device = master, device
        self._poll = select.poll()
        self._poll.register(master, select.POLLOUT | select.POLLHUP)
        self._plugged.set()

    def _point_link(self, device: str) -> None:
        """Atomically (re)point the symlink at `device`."""
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(device, tmp)
        os.replace(tmp, self.link)

    @property
    def read_pending(self) -> bool:
        """Return True while a `read` call waits for bytes."""
        return self._wakeup is not None

    def reader_attached(self) -> bool:
        """Return True when someone has the slave end open."""
        if self._master is None:
            return False
        if self._peer is not None:
            return True
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def write(self, data: bytes) -> int:
        """Write without blocking; return the bytes written and count the rest as dropped."""
        if self._master is None:
            self.stats.dropped_unplugged += len(data)
            return 0
        if not self.reader_attached():
            self.stats.dropped_unheard += len(data)
            return 0
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise PortError(f"{self.link}: write failed: {exc}") from exc
            # The reader closed between the check and the write.
            self.stats.dropped_unheard += len(data)
            return 0
        self.stats.written += written
        self.stats.dropped_full += len(data) - written
        return written

    async def send(self, data: bytes) -> int:
        """Write like `write`, then hold for the time the bytes take on the line at `baudrate`."""
        written = self.write(data)
        if self.baudrate:
            # 10 bit times per byte: start, 8 data, stop.
            await asyncio.sleep(len(data) * 10 / self.baudrate)
        return written

    async def read(self, max_bytes: int = 4096) -> bytes:
        """Return bytes the reader wrote to the port; b"" when the port is unplugged during the call.

        While the port is unplugged the call waits for the replug.
        """
        await self._plugged.wait()
        generation = self._generation
        loop = asyncio.get_running_loop()
        while True:
            master = self._master
            if master is None or generation != self._generation:
                return b""
            try:
                data = os.read(master, max_bytes)
            except BlockingIOError:
                await self._wait_readable(loop, master)
                continue
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise PortError(f"{self.link}: read failed: {exc}") from exc
                await self._wait(loop, _NO_PEER_POLL_S)
                continue
            if data:
                return data

    async def _wait_readable(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        """Wait until `fd` is readable or the port is unplugged."""
        wakeup: asyncio.Future[None] = loop.create_future()
        self._wakeup = wakeup
        loop.add_reader(fd, _resolve, wakeup)
        self._reading = fd
        try:
            await wakeup
        finally:
            # An unplug already removed the reader; the number may belong to a new descriptor by now.
            if self._reading == fd:
                loop.remove_reader(fd)
                self._reading = None
            self._wakeup = None

    async def _wait(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """Wait `seconds` or until the port is unplugged."""
        wakeup: asyncio.Future[None] = loop.create_future()
        self._wakeup = wakeup
        handle = loop.call_later(seconds, _resolve, wakeup)
        try:
            await wakeup
        finally:
            handle.cancel()
            self._wakeup = None

    def unplug(self) -> None:
        """Pull the cable: close the master (the reader sees EOF or EIO) and remove the link."""
        if self._master is None:
            return
        self._release()
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.stats.unplugs += 1

    def replug(self) -> None:
        """Plug the cable back in: a new pty pair behind the same link."""
        if self._master is not None:
            return
        self.open()
        self.stats.replugs += 1

    def _release(self) -> None:
        """Close the descriptors and wake a pending read."""
        master, peer = self._master, self._peer
        self._master = self._peer = self._device = None
        self._generation += 1
        self._plugged.clear()
        if self._reading is not None:
            asyncio.get_running_loop().remove_reader(self._reading)
            self._reading = None
        if self._wakeup is not None:
            _resolve(self._wakeup)
        for fd in (master, peer):
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        """Close the pair and remove the link if it still points at this port."""
        device = self._device
        if self._master is not None:
            self._release()
        with contextlib.suppress(OSError):
            if device is not None and os.readlink(self.link) == device:
                self.link.unlink()

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _resolve(future: asyncio.Future[None]) -> None:
    """Complete `future` unless it is already done."""
    if not future.done():
        future.set_result(None)
