"""Benchmark the case engine on SQLite: alerts/s turned into cases, envelope latency, list queries, memory.

Scenarios (one WAL SQLite file in a temp dir, the bundled district, routing and standards):

- new: every alert is a new device firing → one new auto-dispatched case per alert (the worst case:
  case row, 4 audit rows, key, alert row, routing), in envelopes of `--batch` alerts;
- storm: devices that keep firing and resolving → alerts join or recover existing cases;
- memory: RSS and database size with `--open` open cases, and the time of scoped list queries on them.

Run: .venv/bin/python bench/bench_incidents.py [--alerts 20000] [--batch 100] [--open 100000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.db import Database
from cloud.incidents.store import CaseFilter
from gateway.alerts import AlertEvent, AlertState, Location
from tests.incidents.incidents_rig import CENTER, DISTRICT, T0, WORKER, engine

GRIDS = [g.code for g in DISTRICT.grids]


def rss_mib() -> float:
    """Return this process's peak RSS in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def alerts_new(n: int, offset: int = 0) -> list[AlertEvent]:
    """Return `n` firing gas alerts of `n` distinct devices spread over every grid."""
    return [
        AlertEvent(
            "gw-1",
            f"dev-{offset + i:07d}",
            "combustible_gas",
            AlertState.FIRING,
            1,
            T0 + i,
            value=30.0,
            location=Location(grid=GRIDS[(offset + i) % len(GRIDS)]),
        )
        for i in range(n)
    ]


def alerts_storm(n: int, devices: int) -> list[AlertEvent]:
    """Return `n` alerts of `devices` devices cycling firing → firing → resolved."""
    states = (AlertState.FIRING, AlertState.FIRING, AlertState.RESOLVED)
    return [
        AlertEvent(
            "gw-1",
            f"storm-{i % devices:05d}",
            "combustible_gas",
            states[(i // devices) % 3],
            1,
            T0 + i,
            value=30.0,
            location=Location(grid=GRIDS[i % len(GRIDS)]),
        )
        for i in range(n)
    ]


def run(label: str, eng_alerts: list[AlertEvent], batch: int, db_path: Path) -> None:
    """Feed alerts in envelopes; print alerts/s and envelope latency percentiles."""
    eng = engine(Database.open(db_path))
    latencies = []
    t0 = time.perf_counter()
    for i in range(0, len(eng_alerts), batch):
        s = time.perf_counter()
        eng.handle("gw-1", eng_alerts[i : i + batch])
        latencies.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{label:6} {len(eng_alerts):>7} alerts  {len(eng_alerts) / elapsed:>8.0f} alerts/s  "
        f"envelope of {batch}: p50 {q[49] * 1000:.1f} ms  p99 {q[98] * 1000:.1f} ms  "
        f"cases {eng.count(CENTER)}  {dict(eng.intake.counts)}"
    )


def memory(open_cases: int, batch: int, db_path: Path) -> None:
    """Open `open_cases` cases; print RSS, database size, and list-query times on them."""
    before = rss_mib()
    db = Database.open(db_path)
    eng = engine(db)
    t0 = time.perf_counter()
    for i in range(0, open_cases, 1000):
        eng.handle("gw-1", alerts_new(min(1000, open_cases - i), offset=i))
    fill = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in db_path.parent.glob(db_path.name + "*")) / 2**20
    timings = {}
    for name, actor, flt in (
        ("center page", CENTER, CaseFilter(open_only=True)),
        ("grid worker page", WORKER, CaseFilter(open_only=True)),
        ("center count", CENTER, None),
    ):
        s = time.perf_counter()
        for _ in range(20):
            eng.count(actor) if flt is None else eng.cases(actor, flt, limit=50)
        timings[name] = (time.perf_counter() - s) / 20 * 1000
    s = time.perf_counter()
    eng.tick(T0 + 1)
    tick_ms = (time.perf_counter() - s) * 1000
    print(
        f"memory {open_cases} open cases in {fill:.1f} s ({open_cases / fill:.0f}/s): peak RSS {rss_mib():.0f} MiB "
        f"(+{rss_mib() - before:.0f}), db {size:.0f} MiB; "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items())
        + f"; idle tick {tick_ms:.1f} ms"
    )
    db.close()


def main() -> None:
    """Parse arguments and run the scenarios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--open", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-incidents-") as tmp:
        run("new", alerts_new(args.alerts), args.batch, Path(tmp) / "new.db")
        run("storm", alerts_storm(args.alerts, 500), args.batch, Path(tmp) / "storm.db")
        if args.open:
            memory(args.open, args.batch, Path(tmp) / "memory.db")


if __name__ == "__main__":
    main()
