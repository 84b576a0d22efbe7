"""Benchmark the durable buffer: put rate per fsync policy and batch size vs bare SQLite, and drain rate.

Run: .venv/bin/python bench/bench_buffer.py [--seconds 0.5] [--rounds 3]. Prints a table; one core.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.buffer import DurableBuffer, FsyncPolicy
from gateway.contract import encode_reading
from gateway.readings import Quality, Reading, Reason

GATEWAY = "bench-gw"


def _readings(n: int, start: int) -> list[Reading]:
    return [
        Reading(
            f"dev-{i % 64:03d}",
            "pm25",
            10.0 + (i % 997) / 10,
            "ug/m3",
            1_718_000_000_000 + i,
            Quality.SUSPECT if i % 50 == 0 else Quality.GOOD,
            Reason.STALE if i % 50 == 0 else None,
        )
        for i in range(start, start + n)
    ]


def _rate(step: Callable[[], int], seconds: float) -> float:
    """Call `step` (returns items done) until `seconds` pass; return items per second."""
    done = 0
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        n = step()
        if n == 0:
            break
        done += n
    return done / max(elapsed, 1e-9)


def bench_put(folder: Path, policy: FsyncPolicy, batch: int, seconds: float) -> float:
    """Return readings/s put into a DurableBuffer with `policy`, `batch` readings per put."""
    chunk = _readings(batch, 0)
    with DurableBuffer(folder / f"put-{policy}-{batch}.db", gateway=GATEWAY, max_bytes=1 << 34, fsync=policy) as buf:

        def step() -> int:
            buf.put_readings(chunk)
            return batch

        return _rate(step, seconds)


def bench_bare(folder: Path, policy: FsyncPolicy, batch: int, seconds: float) -> float:
    """Return rows/s of pre-encoded rows executemany'd into a bare WAL table (the floor SQLite sets)."""
    rows = [(r.ts_ms, encode_reading(r)) for r in _readings(batch, 0)]
    db = sqlite3.connect(folder / f"bare-{policy}-{batch}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={policy.value.upper()}")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts_ms INTEGER, body BLOB)")

    def step() -> int:
        db.execute("BEGIN")
        db.executemany("INSERT INTO t (ts_ms, body) VALUES (?, ?)", rows)
        db.execute("COMMIT")
        return batch

    try:
        return _rate(step, seconds)
    finally:
        db.close()


def bench_drain(folder: Path, policy: FsyncPolicy, total: int, seconds: float) -> float:
    """Return readings/s sealed and acked (1000 per envelope) from a buffer holding `total` readings."""
    path = folder / f"drain-{policy}.db"
    with DurableBuffer(path, gateway=GATEWAY, max_bytes=1 << 34, fsync=policy) as buf:
        for start in range(0, total, 1000):
            buf.put_readings(_readings(1000, start))

        def step() -> int:
            done = 0
            for batch in buf.next_batches(4, max_items=1000, max_bytes=1 << 20, now_ms=0):
                buf.ack(batch.seq)
                done += batch.items
            return done

        return _rate(step, seconds)


def main() -> None:
    """Run every benchmark (best of `--rounds` interleaved rounds per cell) and print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per cell per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each cell keeps its best")
    args = parser.parse_args()
    cells = [(policy, batch) for policy in FsyncPolicy for batch in (100, 1000)]
    put: dict[tuple[FsyncPolicy, int], float] = {}
    bare: dict[tuple[FsyncPolicy, int], float] = {}
    drain: dict[FsyncPolicy, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-buffer-") as tmp:
        for r in range(args.rounds):
            folder = Path(tmp) / str(r)
            folder.mkdir()
            for cell in cells:
                put[cell] = max(put.get(cell, 0.0), bench_put(folder, *cell, args.seconds))
                bare[cell] = max(bare.get(cell, 0.0), bench_bare(folder, *cell, args.seconds))
            for policy in FsyncPolicy:
                drain[policy] = max(drain.get(policy, 0.0), bench_drain(folder, policy, 100_000, args.seconds))
    print(f"{'fsync':<7} {'batch':>5} {'buffer rd/s':>12} {'bare rows/s':>12} {'ratio':>6}")
    for (policy, batch), rate in put.items():
        base = bare[policy, batch]
        print(f"{policy.value:<7} {batch:>5} {rate:>12,.0f} {base:>12,.0f} {rate / base:>6.2f}")
    print(f"\n{'fsync':<7} {'drain rd/s (seal 1000/envelope + ack)':>40}")
    for policy in FsyncPolicy:
        print(f"{policy.value:<7} {drain[policy]:>40,.0f}")


if __name__ == "__main__":
    main()
