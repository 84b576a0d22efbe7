"""The bounded queue between sources and the pipeline: chunks in, overflow counted, never silent."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.decode.base import Sample


@dataclass(slots=True)
class Chunk:
    """What a source read for one device: raw bytes for its decoder, or samples it decoded itself.

    `stored` is set once the chunk's readings are in the durable buffer, for sources that acknowledge
    to their device only then (MQTT QoS 1, HJ 212 `9014`).
    """

    device: str
    data: bytes | Sequence[Sample]
    now_ms: int
    stored: asyncio.Future[None] | None = None


class Intake:
    """A bounded queue of chunks with per-device overflow counters."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._queue: asyncio.Queue[Chunk] = asyncio.Queue(maxsize)
        self.overflow: Counter[str] = Counter()

    def offer(self, chunk: Chunk) -> bool:
        """Queue `chunk` if there is room; otherwise count it as overflow and drop it."""
        try:
            self._queue.put_nowait(chunk)
        except asyncio.QueueFull:
            self.overflow[chunk.device] += 1
            return False
        return True

    async def submit(self, chunk: Chunk) -> None:
        """Queue `chunk`, waiting for room: for sources whose devices resend what is not acknowledged."""
        await self._queue.put(chunk)

    async def submit_many(self, chunks: Sequence[Chunk]) -> None:
        """Queue `chunks` in order, waiting for room only when the queue is full."""
        queue = self._queue
        for chunk in chunks:
            if queue.full():
                await queue.put(chunk)
            else:
                queue.put_nowait(chunk)

    async def take(self, limit: int) -> list[Chunk]:
        """Wait for one chunk, then return it with up to `limit - 1` more that are already queued."""
        chunks = [await self._queue.get()]
        while len(chunks) < limit and not self._queue.empty():
            chunks.append(self._queue.get_nowait())
        return chunks

    def depth(self) -> int:
        """Number of chunks waiting."""
        return self._queue.qsize()
