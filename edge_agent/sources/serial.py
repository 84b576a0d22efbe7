"""Serial source: a serial port (NMEA receivers, HJ 212 stations) that survives unplug and replug."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import serial
import serial_asyncio_fast

from edge_agent.config import PortSection
from edge_agent.intake import Chunk, Intake
from edge_agent.sources import wall_ms
from edge_agent.sources.link import LinkState
from gateway.backoff import Backoff

log = logging.getLogger(__name__)

READ_SIZE = 4096


class StreamHandler(Protocol):
    """Serves one open byte stream until it ends (returns) or fails (raises OSError or EOFError)."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the stream, answering on `writer` where the protocol asks for it."""
        ...


class RawStream:
    """Offers every read of a stream to the intake for one device's decoder."""

    def __init__(self, device: str, intake: Intake, clock: Callable[[], int] = wall_ms) -> None:
        self.device = device
        self.intake = intake
        self.clock = clock
        self.bytes_read = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Offer reads until end of stream."""
        while data := await reader.read(READ_SIZE):
            self.bytes_read += len(data)
            self.intake.offer(Chunk(self.device, data, self.clock()))


async def open_port(port: PortSection) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a serial port with its line settings."""
    settings = port.serial
    reader, writer = await serial_asyncio_fast.open_serial_connection(
        url=port.path,
        baudrate=settings.baudrate,
        bytesize=settings.bytesize,
        parity=settings.parity,
        stopbits=settings.stopbits,
    )
    return reader, writer


class SerialSource:
    """Serves one port with a handler, reopening it with jittered, capped backoff when it goes away."""

    def __init__(self, port: PortSection, handler: StreamHandler, backoff: Backoff | None = None) -> None:
        self.name = f"serial:{port.name}"
        self.port = port
        self.handler = handler
        self.backoff = backoff or Backoff()
        self.link = LinkState(f"{self.name} ({port.path})", log)

    async def run(self) -> None:
        """Serve forever; log once when the port goes and once when it comes back."""
        while True:
            try:
                reader, writer = await open_port(self.port)
            except (OSError, serial.SerialException) as exc:
                self.link.went_down(exc)
                await asyncio.sleep(self.backoff.next())
                continue
            self.link.went_up()
            self.backoff.reset()
            try:
                await self.handler.serve(reader, writer)
                self.link.went_down("end of stream")
            except (OSError, serial.SerialException, EOFError) as exc:
                self.link.went_down(exc)
            finally:
                writer.close()
            await asyncio.sleep(self.backoff.next())
