"""gateway.aio.run_together: a task that swallows its cancellation is cancelled again, a failure is raised."""

from __future__ import annotations

import asyncio

import pytest

from gateway.aio import run_together


async def test_a_child_that_swallows_its_cancellation_is_stopped_anyway() -> None:
    """Cancelling run_together ends it although one child ignores the first cancellation (as wait_for can)."""
    started, swallowed, ended = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # Python 3.11's wait_for can lose a cancellation like this
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    async def idle() -> None:
        await asyncio.Event().wait()

    runner = asyncio.create_task(run_together(stubborn(), idle()))
    await started.wait()
    runner.cancel()
    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert swallowed.is_set()
    assert ended.is_set()


async def test_the_first_failure_stops_the_others_and_is_raised() -> None:
    """A child's error ends run_together with that error once the other children are stopped."""
    stopped = asyncio.Event()

    async def fails() -> None:
        raise OSError("link down")

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    with pytest.raises(OSError, match="link down"):
        await run_together(fails(), waits())
    assert stopped.is_set()
