"""The scenario clock: scenario seconds in, device UTC timestamps and paced ticks out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class ScenarioClock:
    """Maps scenario time t (seconds from the start) to device time and paces it against the wall.

    `speed` is scenario seconds per wall second: tests run a minute of a station in a second at 60.
    Content depends only on t, never on the wall, so runs are deterministic however late a tick is.
    """

    start_ms: int
    speed: float = 1.0

    @classmethod
    def from_now(cls, speed: float = 1.0) -> ScenarioClock:
        """Start the scenario at the current wall time, on a whole second."""
        return cls(start_ms=int(time.time()) * 1000, speed=speed)

    @classmethod
    def from_datetime(cls, start: datetime, speed: float = 1.0) -> ScenarioClock:
        """Start the scenario at an aware datetime."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        return cls(start_ms=round(start.timestamp() * 1000), speed=speed)

    def ms(self, t: float) -> int:
        """Return the UTC epoch milliseconds of scenario time `t`."""
        return self.start_ms + round(t * 1000)

    def utc(self, t: float) -> datetime:
        """Return scenario time `t` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ms(t) / 1000, tz=UTC)

    async def ticks(self, step: float, until: float | None = None) -> AsyncIterator[float]:
        """Yield t = 0, step, 2·step, … paced to the wall at `speed`; a late tick is yielded at once."""
        if step <= 0 or self.speed <= 0:
            raise ValueError("step and speed must be positive")
        loop = asyncio.get_running_loop()
        origin = loop.time()
        k = 0
        while until is None or k * step <= until + 1e-9:
            delay = origin + k * step / self.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield k * step
            k += 1
