"""Stopping asyncio tasks for sure: cancel, wait, and cancel again if a cancellation was swallowed."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any

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


async def run_together(*coros: Coroutine[Any, Any, object]) -> None:
    """Run `coros` as tasks until one fails (its error is raised) or this task is cancelled; stop all for sure.

    Like a TaskGroup, except that stopping re-cancels a task that swallowed its cancellation: a TaskGroup
    cancels its children once, so such a child (see above) kept the group, and its owner, waiting forever.
    """
    tasks = [asyncio.create_task(coro) for coro in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                task.result()
    finally:
        await cancel_and_wait(tasks)
