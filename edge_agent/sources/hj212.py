"""HJ 212 stations over serial or TCP: frames in, samples into the intake, `9014` answered once stored."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping

from device_profiles.schema import Hj212Read
from edge_agent.decode.hj212 import Hj212Decoder
from edge_agent.decode.hj212_frame import Hj212Error, build_ack, needs_ack, parse_frame
from edge_agent.intake import Chunk, Intake
from edge_agent.sources import wall_ms
from gateway.aio import cancel_and_wait

log = logging.getLogger(__name__)

READ_SIZE = 4096


class StationStream:
    """Serves one station link: frames are routed by MN to their device's decoder.

    On TCP one listener serves every station, so a link is framed without CRC checks first and each
    frame is then checked in its own device's CRC mode. On a serial port `fixed` names the one device.
    """

    def __init__(
        self,
        decoders: Mapping[str, Hj212Decoder],
        intake: Intake,
        by_mn: Mapping[str, str] | None = None,
        fixed: str | None = None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.decoders = decoders
        self.intake = intake
        self.by_mn = by_mn or {}
        self.fixed = fixed
        self.clock = clock
        self.counters: Counter[str] = Counter()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read frames until end of stream; acknowledge each one that asks, after it is stored."""
        framer = Hj212Decoder(Hj212Read(crc="none"))
        while data := await reader.read(READ_SIZE):
            for sniffed in framer.feed_frames(data):
                device = self.fixed or self.by_mn.get(sniffed.mn or "")
                if device is None:
                    self.counters["unknown_mn"] += 1
                    continue
                decoder = self.decoders[device]
                try:
                    frame = parse_frame(sniffed.raw, decoder.settings.crc)
                except Hj212Error as exc:
                    decoder.stats.add(exc.reason)
                    continue
                decoder.stats.add("frames")
                now_ms = self.clock()
                stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                await self.intake.submit(Chunk(device, decoder.samples(frame, now_ms), now_ms, stored))
                await stored
                if needs_ack(frame):
                    writer.write(build_ack(frame, decoder.settings.crc))
                    await writer.drain()
                    self.counters["acks"] += 1
        # Framing-level counts (junk, oversize) of a link are not any one device's; keep them here.
        self.counters.update({k: v for k, v in framer.stats.counts.items() if k != "frames"})


class Hj212Listener:
    """A TCP listener that stations dial in to (HJ 212 stations are clients of the platform)."""

    def __init__(self, host: str, port: int, stream: StationStream) -> None:
        self.name = f"hj212:{host}:{port}"
        self.host = host
        self.port = port
        self.stream = stream
        self.bound_port: int | None = None
        self.connections = 0
        self._handlers: set[asyncio.Task[object]] = set()

    async def run(self) -> None:
        """Listen until cancelled; each connection is served independently."""
        server = await asyncio.start_server(self._serve, self.host, self.port)
        self.bound_port = server.sockets[0].getsockname()[1]
        log.info("%s: listening on port %d", self.name, self.bound_port)
        try:
            async with server:
                await server.serve_forever()
        finally:
            # Closing the server leaves accepted connections (and their handlers) running: end them too.
            await cancel_and_wait(self._handlers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one station connection until it closes."""
        self.connections += 1
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            await self.stream.serve(reader, writer)
        except (OSError, EOFError) as exc:
            log.info("%s: station connection ended: %s", self.name, exc)
        except asyncio.CancelledError:
            # Stopped by run()'s shutdown. End normally: Python 3.11's start_server calls exception() on a
            # finished handler task, which raises for a cancelled one and logs "Exception in callback".
            pass
        finally:
            if handler is not None:
                self._handlers.discard(handler)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
