"""Serial source over a real pseudo-terminal: bytes reach the intake, and unplug/replug is survived."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edge_agent.config import PortSection
from edge_agent.intake import Intake
from edge_agent.sources.serial import RawStream, SerialSource
from gateway.aio import cancel_and_wait
from gateway.backoff import Backoff
from simulators.pty import PtyPort
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def received(intake: Intake) -> bytes:
    """Drain the intake without waiting and join the bytes it held."""
    out = b""
    while intake.depth():
        chunk = intake._queue.get_nowait()
        assert isinstance(chunk.data, bytes)
        out += chunk.data
    return out


async def test_unplug_and_replug_logs_once_each_and_resumes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An unplugged port is reopened through the same path; the outage logs one line down and one up."""
    caplog.set_level(logging.INFO, logger="edge_agent.sources.serial")
    port = PtyPort(tmp_path / "gnss0")
    port.open()
    intake = Intake()
    source = SerialSource(
        PortSection(name="gnss", path=str(port.link)), RawStream("gnss-1", intake), Backoff(0.02, 0.1)
    )
    task = asyncio.create_task(source.run())
    try:
        await eventually(port.reader_attached, what="the source to open the port")
        port.write(b"$GPGGA,first*00\r\n")
        got = b""

        def has(marker: bytes) -> bool:
            nonlocal got
            got += received(intake)
            return marker in got

        await eventually(lambda: has(b"first"), what="bytes before the unplug")
        port.unplug()
        await eventually(lambda: source.link.up is False, what="the source to notice the unplug")
        # Several reconnect attempts fail while unplugged; none of them logs again.
        await eventually(lambda: source.backoff._attempt >= 3, what="retries while unplugged")
        port.replug()
        await eventually(port.reader_attached, what="the source to reopen the port")
        port.write(b"$GPGGA,second*00\r\n")
        await eventually(lambda: has(b"second"), what="bytes after the replug")
    finally:
        await cancel_and_wait(task)
        port.close()
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    back = [r for r in caplog.records if r.getMessage().endswith(": back")]
    assert (len(lost), len(back)) == (1, 1)
    assert source.link.drops == 1


async def test_missing_port_is_retried_until_it_appears(tmp_path: Path) -> None:
    """A port that does not exist yet at start-up is opened as soon as it appears."""
    link = tmp_path / "late0"
    intake = Intake()
    source = SerialSource(PortSection(name="late", path=str(link)), RawStream("d", intake), Backoff(0.02, 0.1))
    task = asyncio.create_task(source.run())
    port = PtyPort(link)
    try:
        await eventually(lambda: source.link.up is False, what="the first failed open")
        port.open()
        await eventually(port.reader_attached, what="the source to open the late port")
        port.write(b"hello\r\n")
        await eventually(lambda: intake.depth() > 0, what="bytes from the late port")
    finally:
        await cancel_and_wait(task)
        port.close()
