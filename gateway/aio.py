"""Stopping asyncio tasks for sure: cancel, wait, and cancel again if a cancellation was swallowed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

# Python 3.11's asyncio.wait_for (used inside aiomqtt's publish and connect) can swallow a cancellation
# that races with its inner future completing; the task then runs on. Re-cancel until it ends.
RECANCEL_AFTER_S = 1.0


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]] | asyncio.Task[object]) -> None:
    """Cancel `tasks` and return once every one has ended (its CancelledError or error is not raised)."""
    pending = {tasks} if isinstance(tasks, asyncio.Task) else set(tasks)
    while pending := {t for t in pending if not t.done()}:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=RECANCEL_AFTER_S)
