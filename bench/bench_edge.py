"""Edge agent benchmark: a 200-device fleet in; a markdown table of intake, drain, RSS and relay rates out.

    .venv/bin/python bench/bench_edge.py [--quick]

1. intake: pre-built chunks of 200 mixed devices -> Pipeline.process (decode, normalize, rules, durable
   buffer), BATCH_CHUNKS chunks per call, with fsync full (the default) and normal; CPU time of the process.
2. drain: 10 minutes of the fleet's live rate buffered as if the uplink were down, then the real Uplink
   -> mosquitto -> a counting subscriber process; drain rate and its ratio to the live rate.
3. RSS: a real agent process with 200 devices fed by the simulators (MQTT, HJ 212 over TCP, Modbus RTU
   and NMEA over ptys) for ~20 s; VmRSS from /proc.
4. one MQTT message per reading: field mosquitto -> agent process (uplink max_items 1) -> upstream
   mosquitto -> counting subscriber, at increasing rates, beside a bare paho relay in the same run.
   The load generator and the counter speak raw MQTT 3.1.1 (bench/edge_wire.py) with pre-encoded
   packets and batched socket calls: 30-60 µs of CPU per reading together (process start included),
   where the paho publisher alone cost ~280, so they leave the two cores to what is measured; their
   CPU per reading is a column of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import edge_fleet as fleet
import edge_live as live
import edge_procs as procs

from edge_agent.agent import BATCH_CHUNKS
from edge_agent.buffer import DurableBuffer, FsyncPolicy
from edge_agent.pipeline import Pipeline
from edge_agent.rules import RuleEngine
from edge_agent.uplink import Uplink, UplinkSettings
from gridwatch.broker import Mosquitto

OUTAGE_S = 600


class NoHealth:
    """The drain bench runs the uplink without an agent around it."""

    def health(self) -> dict[str, Any]:
        """Return no agent facts."""
        return {}


def machine() -> list[tuple[str, str]]:
    """Return the facts that make the numbers comparable."""
    model = next(
        (
            r.split(":", 1)[1].strip()
            for r in Path("/proc/cpuinfo").read_text().splitlines()
            if r.startswith("model name")
        ),
        platform.processor(),
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        ("nproc", str(os.cpu_count())),
        ("CPU", model),
        ("python", platform.python_version()),
        ("load average at start", load),
        ("command", shlex.join([".venv/bin/python", "bench/bench_edge.py", *sys.argv[1:]])),
    ]


def intake(tmp: Path, chunks: list[Any], fsync: FsyncPolicy) -> dict[str, float]:
    """Push `chunks` through a fresh pipeline and buffer in agent-sized batches; return rates."""
    specs = fleet.specs_for(fleet.Mix(), fleet.Cadence(), tmp)
    with DurableBuffer(tmp / f"intake-{fsync.value}.db", gateway=fleet.GATEWAY, max_bytes=2**31, fsync=fsync) as buf:
        pipeline = Pipeline(specs, buf, RuleEngine(fleet.GATEWAY))
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, len(chunks), BATCH_CHUNKS):
            pipeline.process(chunks[start : start + BATCH_CHUNKS])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n = pipeline.counters.readings
    return {"readings": n, "cpu_s": cpu, "wall_s": wall, "per_core": n / cpu, "per_wall": n / wall}


async def drain(tmp: Path, chunks: list[Any], seconds: float) -> dict[str, float]:
    """Buffer `chunks` (an outage), then drain them with the real uplink to a real mosquitto."""
    specs = fleet.specs_for(fleet.Mix(), fleet.Cadence(), tmp)
    with DurableBuffer(tmp / "drain.db", gateway=fleet.GATEWAY, max_bytes=2**31) as buf:
        pipeline = Pipeline(specs, buf, RuleEngine(fleet.GATEWAY))
        fill = time.perf_counter()
        for start in range(0, len(chunks), BATCH_CHUNKS):
            pipeline.process(chunks[start : start + BATCH_CHUNKS])
        fill = time.perf_counter() - fill
        readings, items = pipeline.counters.readings, buf.stats().depth_items
        async with Mosquitto(tmp / "drain-broker") as broker, procs.counter(broker.port, "gw/+/telemetry") as sub:
            uplink = Uplink(UplinkSettings(port=broker.port), buf, fleet.GATEWAY, NoHealth())
            started = time.perf_counter()
            task = asyncio.create_task(uplink.run())
            # Polling a counter keeps the uplink free of bench hooks; 10 ms is noise against the drain.
            while uplink.counters.acked_items < items:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            got = await sub.wait_for(readings, within_s=60)
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    live_rate = readings / seconds
    return {
        "readings": readings,
        "live": live_rate,
        "fill_s": fill,
        "drain_s": elapsed,
        "drain": readings / elapsed,
        "ratio": readings / elapsed / live_rate,
        "arrived": got["unique"],
        "dups": got["dup_keys"],
    }


def verdict(ok: bool) -> str:
    """Return the "met" cell of a row."""
    return "yes" if ok else "**no**"


def table(rows: Sequence[tuple[str, ...]], head: tuple[str, ...]) -> str:
    """Return rows as a markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    facts = machine()
    print(table(facts, ("machine", "")), end="\n\n", flush=True)
    parts = set(args.only.split(",")) if args.only else {"1", "2", "3", "4"}
    results: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as name:
        tmp = Path(name)
        cadence = fleet.Cadence()
        mix = fleet.Mix()
        if "1" in parts:
            seconds = 60 if args.quick else 180
            chunks = list(fleet.live_chunks(fleet.specs_for(mix, cadence, tmp), cadence, seconds))
            for fsync in (FsyncPolicy.FULL, FsyncPolicy.NORMAL):
                r = intake(tmp, chunks, fsync)
                results.append(
                    (
                        f"1. into the durable buffer, fsync={fsync.value} ({r['readings']:,} readings, "
                        f"{BATCH_CHUNKS} chunks/call)",
                        f"{r['per_core']:,.0f} readings/s per core ({r['per_wall']:,.0f}/s wall)",
                        "≥ 50,000/s per core",
                        verdict(r["per_core"] >= 50_000),
                    )
                )
                print(table(results[-1:], ("measure", "result", "target", "met")), flush=True)
        if "2" in parts:
            seconds = OUTAGE_S
            chunks = list(fleet.live_chunks(fleet.specs_for(mix, cadence, tmp), cadence, seconds))
            r = await drain(tmp, chunks, seconds)
            results.append(
                (
                    f"2. live rate of {mix.total} devices (Modbus {cadence.modbus:g} s, MQTT {cadence.mqtt:g} s, "
                    f"GNSS {1 / cadence.gnss:g} Hz, HJ 212 {cadence.hj212:g} s)",
                    f"{r['live']:,.0f} readings/s",
                    "",
                    "",
                )
            )
            results.append(
                (
                    f"2. drain after a {seconds // 60}-min outage ({r['readings']:,} readings buffered in "
                    f"{r['fill_s']:.1f} s; uplink defaults: window 32, 1000/batch)",
                    f"{r['drain']:,.0f} readings/s = {r['ratio']:.0f}× live "
                    f"({r['arrived']:,} arrived, {r['dups']} doubled)",
                    "≥ 20× live",
                    verdict(r["ratio"] >= 20 and r["arrived"] == r["readings"] and not r["dups"]),
                )
            )
            print(table(results[-2:], ("measure", "result", "target", "met")), flush=True)
        if "3" in parts:
            r = await live.rss(tmp / "rss", settle_s=10 if args.quick else 20)
            results.append(
                (
                    f"3. agent RSS, {r['devices']} devices ({r['mix']}), after {r['seconds']:.0f} s under load",
                    f"{r['rss_mb']:.1f} MB (peak {r['hwm_mb']:.1f} MB; {r['readings']:,} readings upstream)",
                    "≤ 80 MB",
                    verdict(r["rss_mb"] <= 80),
                )
            )
            print(table(results[-1:], ("measure", "result", "target", "met")), flush=True)
        if "4" in parts:
            rates = [int(x) for x in args.rates.split(",")]
            steps = await live.relay_steps(tmp / "relay", rates, 5 if args.quick else 10, window=args.window)
            print(live.steps_table(steps), flush=True)
            results.extend(live.steps_summary(steps))
    print()
    print(table(facts, ("machine", "")))
    print()
    print(table(results, ("measure", "result", "target", "met")))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (fewer readings, 5 s rate steps)")
    parser.add_argument("--only", default="", help="comma-separated parts to run (1,2,3,4)")
    parser.add_argument("--rates", default="1000,2000,3000,5000,8000", help="readings/s steps of part 4")
    parser.add_argument("--window", type=int, default=256, help="uplink window of the part 4 agent")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
