"""Tests of the pty port: symlinked path, non-blocking writes with counted drops, unplug and replug."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from simulators.errors import PortError
from simulators.pty import PtyPort

pytestmark = pytest.mark.integration


def open_reader(path: Path) -> int:
    """Open the slave end the way a serial reader does (non-blocking, no controlling tty)."""
    return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


def wake(future: asyncio.Future[None]) -> None:
    """Complete `future` once; the loop calls this while the descriptor stays readable."""
    if not future.done():
        future.set_result(None)


async def read_some(fd: int) -> bytes:
    """Wait until `fd` is readable, then return what is there; raise OSError as the read does."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, wake, ready)
    try:
        async with asyncio.timeout(5.0):
            await ready
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 65536)


async def test_bytes_reach_a_reader_through_the_symlink(tmp_path: Path) -> None:
    """Bytes written to the port arrive at a reader that opened the symlink, unchanged."""
    async with PtyPort(tmp_path / "dev" / "gnss0") as port:
        assert (tmp_path / "dev" / "gnss0").is_symlink()
        assert os.readlink(port.link) == port.device
        fd = open_reader(port.link)
        try:
            assert port.reader_attached()
            payload = bytes(range(256)) + b"$GPGGA,1*00\r\n"
            assert port.write(payload) == len(payload)
            got = b""
            while len(got) < len(payload):
                got += await read_some(fd)
            assert got == payload
            assert port.stats.written == len(payload)
        finally:
            os.close(fd)


async def test_bytes_nobody_hears_are_dropped_and_counted(tmp_path: Path) -> None:
    """With no reader attached, writes are dropped as unheard so a late reader gets no stale backlog."""
    async with PtyPort(tmp_path / "p") as port:
        assert not port.reader_attached()
        assert port.write(b"old line\r\n") == 0
        assert port.stats.dropped_unheard == 10
        fd = open_reader(port.link)
        try:
            port.write(b"new line\r\n")
            assert await read_some(fd) == b"new line\r\n"
        finally:
            os.close(fd)


async def test_a_reader_that_never_reads_costs_dropped_bytes_not_a_stall(tmp_path: Path) -> None:
    """When the pty buffer is full, writes return at once and the excess is counted as dropped_full."""
    async with PtyPort(tmp_path / "p") as port:
        fd = open_reader(port.link)
        try:
            chunk = b"x" * 4096
            offered = 0
            for _ in range(64):
                port.write(chunk)
                offered += len(chunk)
            stats = port.stats
            assert stats.dropped_full > 0
            assert stats.written + stats.dropped_full == offered
            assert 1024 <= stats.written < offered
        finally:
            os.close(fd)


async def test_unplug_gives_the_reader_eof_or_eio_and_replug_a_new_pty_at_the_same_path(
    tmp_path: Path,
) -> None:
    """Unplug ends the reader's stream (EOF or EIO) and removes the link; replug re-points it at a new pty."""
    async with PtyPort(tmp_path / "gnss0") as port:
        first_device = port.device
        fd = open_reader(port.link)
        try:
            port.write(b"before\r\n")
            assert await read_some(fd) == b"before\r\n"
            port.unplug()
            assert not port.link.exists()
            try:
                ending: bytes | int | None = await read_some(fd)
            except OSError as exc:
                ending = exc.errno
            assert ending in (b"", errno.EIO)
        finally:
            os.close(fd)
        assert port.write(b"lost\r\n") == 0
        assert port.stats.dropped_unplugged == 6
        with pytest.raises(PortError):
            _ = port.device
        port.replug()
        assert port.link.is_symlink()
        assert os.readlink(port.link) == port.device
        fd = open_reader(port.link)
        try:
            port.write(b"after\r\n")
            assert await read_some(fd) == b"after\r\n"
        finally:
            os.close(fd)
        assert (port.stats.unplugs, port.stats.replugs) == (1, 1)
        assert port.device.startswith("/dev/pts/")
        assert first_device.startswith("/dev/pts/")


async def test_read_returns_what_the_reader_wrote_and_empty_on_unplug(tmp_path: Path) -> None:
    """The device side reads the reader's bytes (e.g. platform replies) and sees b"" when unplugged."""
    async with PtyPort(tmp_path / "p") as port:
        fd = open_reader(port.link)
        try:
            os.write(fd, b"##0010reply")
            assert await asyncio.wait_for(port.read(), 5) == b"##0010reply"
            pending = asyncio.create_task(port.read())
            async with asyncio.timeout(5):
                # A property, not an event: poll it under a deadline.
                while not port.read_pending:  # noqa: ASYNC110
                    await asyncio.sleep(0)
            port.unplug()
            assert await asyncio.wait_for(pending, 5) == b""
        finally:
            os.close(fd)


async def test_close_removes_the_link(tmp_path: Path) -> None:
    """Closing the port removes its symlink and a second open of the same port object is refused."""
    port = PtyPort(tmp_path / "p")
    port.open()
    with pytest.raises(PortError):
        port.open()
    port.close()
    assert not port.link.exists()
