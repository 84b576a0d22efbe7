"""Decoder processes: chunks of raw messages in, their verdicts (readings as columns) out, off the writer's core.

JSON parsing and validation cost about as much per reading as the SQLite insert, and one Python process
runs them one after the other under one GIL. Worker processes (forkserver: forked from a clean, preloaded
server, never from the threaded cloud process) decode while the writer thread stores the previous chunk.
Verdicts come back without the directory check, which needs the cloud's registry: the writer gates them
(cloud.ingest.admit.gate). Readings come back as ReadingColumns, a few arrays that pickle in one copy.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import select
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Final

from cloud.gcpause import without_gc
from cloud.ingest.admit import Message, Verdict
from cloud.ingest.apply import decode_messages

# Imported once by the fork server, so each decoder process starts with them loaded.
PRELOAD: Final = ["cloud.ingest.apply"]


def auto_processes() -> int:
    """Return the default decoder count: one per core beyond the writer's, at most four; none on one core."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _die_with(owner: int) -> None:
    """Pool initializer: end this decoder process as soon as the `owner` process (the ingest worker's) ends."""
    # A decoder blocks on its task queue, whose write end it holds itself, and the fork server lives as long
    # as any of its children do: nothing would ever tell a decoder that a SIGKILLed cloud process is gone.
    # A pidfd becomes readable when its process ends, and is never confused by a reused pid.
    try:
        watch = os.pidfd_open(owner)
    except ProcessLookupError:  # the owner ended before this process started
        os._exit(1)
    threading.Thread(target=_exit_when_readable, args=(watch,), name="owner-watch", daemon=True).start()


def _exit_when_readable(fd: int) -> None:
    """Block until the pidfd `fd` says its process ended, then end this one."""
    select.select([fd], [], [])
    os._exit(1)


def _decode(messages: Sequence[Message], max_bytes: int, columns: bool) -> list[Verdict]:
    """Decode one chunk in a decoder process."""
    # A chunk's rows all live until it is pickled back and form no cycles: the collector would only rescan them.
    return without_gc(functools.partial(decode_messages, messages, max_bytes=max_bytes, columns=columns))


class DecoderPool:
    """`processes` decoder processes; `decode` is awaited on the event loop."""

    def __init__(self, processes: int, *, max_bytes: int, columns: bool) -> None:
        if processes < 1:
            raise ValueError(f"a decoder pool needs at least one process, got {processes}")
        self.processes = processes
        self.max_bytes = max_bytes
        self.columns = columns
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self._pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_die_with, initargs=(os.getpid(),))

    async def start(self) -> None:
        """Start every process now (one empty chunk each), so the first real chunk pays no start-up."""
        await asyncio.gather(*(self.decode([]) for _ in range(self.processes)))

    async def decode(self, messages: Sequence[Message]) -> list[Verdict]:
        """Return the verdicts of `messages`, in order; raise BrokenProcessPool if a process died."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _decode, messages, self.max_bytes, self.columns)

    @property
    def pids(self) -> list[int]:
        """The decoder processes' ids (benchmarks read their CPU time)."""
        return list(self._pool._processes)

    def close(self) -> None:
        """Stop the processes; chunks not yet decoded are dropped (their messages were never acked)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["BrokenProcessPool", "DecoderPool", "auto_processes"]
