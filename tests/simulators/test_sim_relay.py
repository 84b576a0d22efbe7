"""The uplink relay: bytes pass both ways; a cut drops live connections and refuses new ones until it ends."""

from __future__ import annotations

import asyncio

from simulators.relay import TcpRelay
from tests.support.waiting import eventually


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every byte back."""
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_relay_passes_bytes_and_cuts_for_a_while() -> None:
    """Through the relay an echo answers; during a cut the link is closed and reconnecting fails."""
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, TcpRelay("127.0.0.1", port) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        relay.cut(0.5)
        assert await reader.read(10) == b""
        writer.close()
        refused_reader, refused_writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await refused_reader.read(10) == b""
        refused_writer.close()
        assert relay.refused == 1
        await eventually(lambda: not relay.down, within_s=5, what="the cut to end")
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"back")
        assert await reader.readexactly(4) == b"back"
        writer.close()
        await writer.wait_closed()
