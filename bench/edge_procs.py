"""Processes of the edge bench: the agent, the counting subscriber, the publisher and the relay; /proc facts."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


async def script(name: str, *args: object, stdin: bool = True) -> asyncio.subprocess.Process:
    """Start `bench/<name>.py` with the venv's interpreter, stdout piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / f"{name}.py"),
        *map(str, args),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )


async def line(proc: asyncio.subprocess.Process, within_s: float = 60.0) -> str:
    """Read one stdout line of `proc`."""
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), within_s)).decode().strip()


async def finish(proc: asyncio.subprocess.Process) -> None:
    """Close stdin (the scripts' stop signal), then reap; kill what does not stop."""
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


class Counter:
    """The upstream counting subscriber process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def report(self) -> dict[str, Any]:
        """Return the subscriber's counts so far."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"report\n")
        await self.proc.stdin.drain()
        result: dict[str, Any] = orjson.loads(await line(self.proc))
        return result

    async def wait_for(self, unique: int, within_s: float, idle: float = 3.0) -> dict[str, Any]:
        """Poll until `unique` keys arrived, or nothing new came for `idle` s, or `within_s` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        last_n, last_change = -1, loop.time()
        while True:
            rep = await self.report()
            if rep["unique"] >= unique or loop.time() > deadline:
                return rep
            if rep["unique"] != last_n:
                last_n, last_change = rep["unique"], loop.time()
            elif loop.time() - last_change > idle:
                return rep
            await asyncio.sleep(0.05)


@asynccontextmanager
async def counter(port: int, pattern: str) -> AsyncIterator[Counter]:
    """Run the counting subscriber on `pattern`; yield once it is subscribed."""
    proc = await script("edge_subscriber", "127.0.0.1", port, pattern)
    try:
        if await line(proc) != "ready":
            raise RuntimeError("subscriber did not subscribe")
        yield Counter(proc)
    finally:
        await finish(proc)


@asynccontextmanager
async def relay(field_port: int, upstream_port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run the bare paho relay; yield once it is subscribed."""
    proc = await script("edge_relay", field_port, upstream_port)
    try:
        if await line(proc) != "ready":
            raise RuntimeError("relay did not subscribe")
        yield proc
    finally:
        await finish(proc)


async def publish(port: int, rate: float, seconds: float, sensors: int, offset: int) -> dict[str, Any]:
    """Run the publisher process to completion and return its report."""
    proc = await script("edge_publisher", "127.0.0.1", port, rate, seconds, sensors, offset, stdin=False)
    out = await line(proc, within_s=seconds + 330)
    await proc.wait()
    result: dict[str, Any] = orjson.loads(out)
    return result


@asynccontextmanager
async def agent(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `python -m gridwatch agent --config CONFIG` as its own process, logging to `log`."""
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gridwatch",
            "agent",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def status_kb(pid: int, field: str) -> int:
    """Return a kB field (VmRSS, VmHWM) of /proc/<pid>/status."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1])
    raise KeyError(field)


def machine_ticks() -> tuple[int, int]:
    """Return (busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def children_cpu_s() -> float:
    """Return user + system CPU seconds of this process's reaped children (the publishers) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_s(pid: int) -> float:
    """Return user + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS
