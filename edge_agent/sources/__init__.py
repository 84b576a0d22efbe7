"""Sources: the I/O side of the agent. Each reads one transport and offers chunks to the intake."""

from __future__ import annotations

import time
from typing import Protocol


class Source(Protocol):
    """A long-running reader; `run` returns only when cancelled."""

    name: str

    async def run(self) -> None:
        """Read forever, surviving the transport going away and coming back."""
        ...


def wall_ms() -> int:
    """Return the wall clock in UTC milliseconds (the arrival time of what a source reads)."""
    return time.time_ns() // 1_000_000
