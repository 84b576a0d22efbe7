"""Await a condition with a deadline: the tests' replacement for sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(condition: Callable[[], bool], within_s: float = 10.0, what: str = "condition") -> None:
    """Return once `condition()` holds; fail the test if it does not within `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what}")
        await asyncio.sleep(0.01)


async def eventually_async(
    check: Callable[[], Awaitable[bool]], within_s: float = 10.0, what: str = "condition"
) -> None:
    """Like `eventually` for a condition that must be awaited (an HTTP query, say)."""
    deadline = time.monotonic() + within_s
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what}")
        await asyncio.sleep(0.1)
