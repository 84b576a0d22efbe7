"""Benchmark the series stores against their ceilings, in the same run.

SQLite: bare executemany of pre-built rows into the same WITHOUT ROWID table (the ceiling) vs
SqliteSeriesStore.write (conversion, series lookup, idempotent insert, 1 m and 1 h rollups), and a replay
of already-stored batches. Line protocol: influxdb-client's synchronous write of pre-built lines (the
ceiling) vs LineProtocolStore.write (line building included), both into a real VictoriaMetrics.

Run: .venv/bin/python bench/bench_store.py [--readings 400000] [--batch 5000] [--no-victoria]
Prints readings/s and ratios; numbers are per core.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

# The VictoriaMetrics harness lives with the tests; the bench reuses it rather than copying it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.store.lineprotocol import LineProtocolStore, encode
from cloud.store.sqlite import FLAGS, PRAGMAS, SCHEMA, SqliteSeriesStore, insert_points_sql
from gateway.readings import Quality, Reading, Reason

T = TypeVar("T")
START_MS = int(time.time() * 1000) - 6 * 3_600_000  # near now: VictoriaMetrics keeps a limited past


def make_readings(n: int, devices: int) -> list[Reading]:
    """Return `n` readings of `devices` devices x 2 quantities at 1 Hz each, 2 % suspect, in time order."""
    out: list[Reading] = []
    for i in range(n):
        dev, quantity = divmod(i % (2 * devices), 2)
        suspect = i % 50 == 0
        out.append(
            Reading(
                f"dev-{dev:04d}",
                "pm25" if quantity == 0 else "pm10",
                10.0 + (i % 997) / 10,
                "ug/m3",
                START_MS + (i // (2 * devices)) * 1000,
                Quality.SUSPECT if suspect else Quality.GOOD,
                Reason.STALE if suspect else None,
            )
        )
    return out


def timed(fn: Callable[[], object]) -> float:
    """Return the seconds `fn()` took."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def batches(items: list[T], size: int) -> list[list[T]]:
    """Split `items` into consecutive chunks of `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def bench_sqlite(folder: Path, readings: list[Reading], batch: int, rounds: int) -> None:
    """Print the bare executemany ceiling, the store's write rate, and the replay rate (best of rounds)."""
    chunks = batches(readings, batch)
    sids: dict[tuple[str, str], int] = {}
    rows = [
        (
            sids.setdefault((r.device, r.quantity), len(sids) + 1),
            r.ts_ms,
            r.value,
            FLAGS[(r.quality, r.reason)],
        )
        for r in readings
    ]
    row_chunks = batches(rows, batch)

    def bare(path: Path) -> float:
        db = sqlite3.connect(path, isolation_level=None)
        for pragma in PRAGMAS:  # the store's own settings, so the ceiling moves with them
            db.execute(pragma)
        db.executescript(SCHEMA)
        t0 = time.perf_counter()
        for chunk in row_chunks:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert_points_sql(1, 4), chunk)
            db.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        db.close()
        return elapsed

    def store(path: Path) -> tuple[float, float]:
        with SqliteSeriesStore(path) as s:

            def write() -> None:
                for chunk in chunks:
                    s.write(chunk)
                s.flush()  # the rollup work the writes deferred is part of their cost

            t_write, t_replay = timed(write), timed(write)
            assert s.stats["written"] == len(readings), s.stats
        return t_write, t_replay

    # Alternating rounds on fresh files, best of each: the machine is shared, so single runs are noisy.
    t_bare, t_store, t_replay = float("inf"), float("inf"), float("inf")
    for i in range(rounds):
        t_bare = min(t_bare, bare(folder / f"bare-{i}.db"))
        t_w, t_r = store(folder / f"store-{i}.db")
        t_store, t_replay = min(t_store, t_w), min(t_replay, t_r)

    n = len(readings)
    print(f"sqlite  bare executemany (ceiling)   {n / t_bare:>12,.0f} rows/s")
    ratio = t_bare / t_store
    print(f"sqlite  SqliteSeriesStore.write      {n / t_store:>12,.0f} readings/s  ratio {ratio:.2f}")
    print(f"sqlite  replay (all duplicates)      {n / t_replay:>12,.0f} readings/s")


def bench_victoria(folder: Path, readings: list[Reading], batch: int) -> None:
    """Print influxdb-client's raw synchronous rate on pre-built lines vs LineProtocolStore.write."""
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    from cloud.store.lineprotocol import PRECISION_MS
    from tests.support.victoria import VictoriaMetrics

    half = len(readings) // 2
    # Different halves so neither run rewrites the other's samples.
    raw_part, store_part = readings[:half], readings[half:]
    raw_lines = batches([line for r in raw_part if (line := encode(r)) is not None], batch)
    with VictoriaMetrics(folder / "vm") as vm:
        client = InfluxDBClient(url=vm.url, token="", org="gridwatch")
        api = client.write_api(write_options=SYNCHRONOUS)

        def raw() -> None:
            for lines in raw_lines:
                api.write("gridwatch", "gridwatch", record=lines, write_precision=PRECISION_MS)

        t_raw = timed(raw)
        client.close()  # type: ignore[no-untyped-call]
        store = LineProtocolStore(vm.url, bucket="gridwatch", batch_size=batch)
        t_store = timed(lambda: store.write(store_part))
        store.close()
    print(f"victoria influxdb-client raw lines   {half / t_raw:>12,.0f} lines/s")
    ratio = t_raw / t_store
    print(f"victoria LineProtocolStore.write     {half / t_store:>12,.0f} readings/s  ratio {ratio:.2f}")


def main() -> None:
    """Parse arguments and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--devices", type=int, default=500, help="devices (2 quantities each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-victoria", action="store_true")
    args = parser.parse_args()
    readings = make_readings(args.readings, args.devices)
    print(f"{len(readings):,} readings, {2 * args.devices} series, batches of {args.batch:,}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_sqlite(Path(tmp), readings, args.batch, args.rounds)
        if not args.no_victoria:
            bench_victoria(Path(tmp), readings, args.batch)


if __name__ == "__main__":
    main()
