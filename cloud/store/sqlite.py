"""The embedded series store: Readings into one SQLite file with 1-minute and 1-hour rollups, Points out.

Raw points live in a WITHOUT ROWID table keyed (series, ts) and are inserted with INSERT OR IGNORE, so a
re-sent reading changes nothing. Rollups (sum, count, min, max of good readings) are kept exact:

- fast path: when every row of a batch was new (the change count equals the batch size), the batch's own
  per-minute and per-hour aggregates are added to the rollups;
- slow path: when some rows were ignored (a replay or an overlap), the minute buckets the batch touched
  are recomputed from the raw points and their hours from the minute rollups.

Retention (`prune`) cuts on hour boundaries and raises a horizon below which writes are refused (counted
as `too_old`), so a bucket is never recomputed from partly deleted points.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from cloud.store import DAY_MS, HOUR_MS, MINUTE_MS, Point, StoreError, bucket_edges
from gateway.readings import Quality, Reading, Reason

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit TEXT NOT NULL,
    UNIQUE (device, quantity)
);
CREATE TABLE IF NOT EXISTS points (
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL,
    flags INTEGER NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1m (
    series INTEGER NOT NULL, ts INTEGER NOT NULL,
    sum REAL NOT NULL, count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h (
    series INTEGER NOT NULL, ts INTEGER NOT NULL,
    sum REAL NOT NULL, count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

INSERT_POINTS: Final = "INSERT OR IGNORE INTO points (series, ts, value, flags) VALUES (?, ?, ?, ?)"

_ADD_ROLLUP: Final = """
INSERT INTO {table} (series, ts, sum, count, min, max) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (series, ts) DO UPDATE SET
    sum = sum + excluded.sum, count = count + excluded.count,
    min = min(min, excluded.min), max = max(max, excluded.max)
"""
_RECOMPUTE_1M: Final = """
INSERT OR REPLACE INTO rollup_1m (series, ts, sum, count, min, max)
SELECT ?1, ?2, sum(value), count(*), min(value), max(value) FROM points
WHERE series = ?1 AND ts >= ?2 AND ts < ?2 + 60000 AND flags = 0 HAVING count(*) > 0
"""
_RECOMPUTE_1H: Final = """
INSERT OR REPLACE INTO rollup_1h (series, ts, sum, count, min, max)
SELECT ?1, ?2, sum(sum), sum(count), min(min), max(max) FROM rollup_1m
WHERE series = ?1 AND ts >= ?2 AND ts < ?2 + 3600000 HAVING count(*) > 0
"""
# Quality and reason share one integer column, `flags` = quality code + 8 * reason code (0 = good), which
# keeps rows small: a fifth column cost about a third of the insert rate. Codes are fixed here, never taken
# from enum order, because they are stored.
QUALITY_CODES: Final[dict[Quality, int]] = {Quality.GOOD: 0, Quality.SUSPECT: 1, Quality.BAD: 2}
REASON_CODES: Final[dict[Reason | None, int]] = {
    None: 0,
    Reason.OUT_OF_RANGE: 1,
    Reason.INSTRUMENT_FLAG: 2,
    Reason.STALE: 3,
    Reason.CHECKSUM: 4,
    Reason.CLOCK: 5,
    Reason.NO_FIX: 6,
}
FLAGS: Final[dict[tuple[Quality, Reason | None], int]] = {
    (q, r): qc + 8 * rc for q, qc in QUALITY_CODES.items() for r, rc in REASON_CODES.items()
}
_UNFLAG: Final[dict[int, tuple[Quality, Reason | None]]] = {f: qr for qr, f in FLAGS.items()}
# Negative = KiB. Each batch touches one leaf page per series, so the hot pages of all series must fit.
CACHE_KIB: Final = -65_536

# Rollup tables by bucket width, widest first: a query uses the widest one that divides its step.
ROLLUPS: Final[tuple[tuple[int, str], ...]] = ((HOUR_MS, "rollup_1h"), (MINUTE_MS, "rollup_1m"))

Bucket = tuple[int, int]  # (series id, bucket start ms)
Agg = list[float]  # [sum, count, min, max]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each resolution is kept, in ms; None keeps it forever."""

    raw_ms: int = 30 * DAY_MS
    minute_ms: int = 365 * DAY_MS
    hour_ms: int | None = None

    def __post_init__(self) -> None:
        # Rollups are recomputed from the finer level, so a coarser level must outlive the finer one.
        if self.minute_ms < self.raw_ms or (self.hour_ms is not None and self.hour_ms < self.minute_ms):
            raise ValueError("retention must not shrink from raw to minute to hour")


class SqliteSeriesStore:
    """SeriesStore on one SQLite file (WAL); one writer thread at a time, never in parallel."""

    def __init__(self, path: Path | str, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self.stats: Counter[str] = Counter()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode stays consistent on power loss and may lose only the last commits,
            # which the ingest re-applies from the broker (it acks after the write returns).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA cache_size={CACHE_KIB}")
            self._db.executescript(SCHEMA)
            self._load_series()
            row = self._db.execute("SELECT value FROM meta WHERE key = 'raw_horizon'").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open series store {path}: {exc}") from exc
        self._horizon: int = row[0] if row else -(2**63)

    def _load_series(self) -> None:
        rows = self._db.execute("SELECT id, device, quantity, unit FROM series").fetchall()
        self._series: dict[tuple[str, str], int] = {(d, q): i for i, d, q, _ in rows}
        self._units: dict[int, str] = {i: u for i, _, _, u in rows}

    def _series_id(self, reading: Reading) -> int:
        key = (reading.device, reading.quantity)
        self._db.execute("INSERT OR IGNORE INTO series (device, quantity, unit) VALUES (?, ?, ?)", (*key, reading.unit))
        sid: int = self._db.execute("SELECT id FROM series WHERE device = ? AND quantity = ?", key).fetchone()[0]
        self._series[key] = sid
        self._units[sid] = reading.unit
        return sid

    def write(self, readings: Sequence[Reading]) -> int:
        """Store `readings` in one transaction; return how many were new (duplicates count 0)."""
        series, horizon, flags, good = self._series, self._horizon, FLAGS, Quality.GOOD
        rows: list[tuple[int, int, float, int]] = []
        minutes: dict[Bucket, Agg] = {}
        refused = Counter[str]()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for r in readings:
                ts, v = r.ts_ms, r.value
                if ts < horizon:
                    refused["too_old"] += 1
                    continue
                if not math.isfinite(v):
                    refused["not_finite"] += 1
                    continue
                sid = series.get((r.device, r.quantity))
                if sid is None:
                    sid = self._series_id(r)
                q, why = r.quality, r.reason
                # Enum hashing is a Python-level call; the common good reading skips the lookup.
                f = 0 if q is good and why is None else flags[(q, why)]
                rows.append((sid, ts, v, f))
                if f:
                    continue
                # Aggregated while converting, so the fast path costs no second pass over the batch.
                key = (sid, ts - ts % MINUTE_MS)
                a = minutes.get(key)
                if a is None:
                    minutes[key] = [v, 1, v, v]
                else:
                    a[0] += v
                    a[1] += 1
                    if v < a[2]:
                        a[2] = v
                    if v > a[3]:
                        a[3] = v
            before = self._db.total_changes
            self._db.executemany(INSERT_POINTS, rows)
            new = self._db.total_changes - before
            if new == len(rows):
                self._add_rollups(minutes)
            elif new:
                self._recompute_rollups(minutes)
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"series write failed: {exc}") from exc
            raise
        self.stats.update(refused)
        self.stats["written"] += new
        self.stats["duplicate"] += len(rows) - new
        return new

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        # Series created in the rolled-back transaction are gone: rebuild the cache from the file.
        self._load_series()

    def _add_rollups(self, minutes: dict[Bucket, Agg]) -> None:
        hours: dict[Bucket, Agg] = {}
        for (sid, ts), (s, n, lo, hi) in minutes.items():
            key = (sid, ts - ts % HOUR_MS)
            a = hours.get(key)
            if a is None:
                hours[key] = [s, n, lo, hi]
            else:
                a[0] += s
                a[1] += n
                a[2] = min(a[2], lo)
                a[3] = max(a[3], hi)
        self._db.executemany(_ADD_ROLLUP.format(table="rollup_1m"), [(*k, *a) for k, a in minutes.items()])
        self._db.executemany(_ADD_ROLLUP.format(table="rollup_1h"), [(*k, *a) for k, a in hours.items()])

    def _recompute_rollups(self, minutes: dict[Bucket, Agg]) -> None:
        # Only buckets holding a good reading of this batch can have changed.
        self._db.executemany(_RECOMPUTE_1M, list(minutes))
        self._db.executemany(_RECOMPUTE_1H, list({(sid, ts - ts % HOUR_MS) for sid, ts in minutes}))

    def query(self, device: str, quantity: str, start_ms: int, end_ms: int, step_ms: int | None = None) -> list[Point]:
        """Return good readings in [start_ms, end_ms), raw or per step bucket (from rollups if possible)."""
        sid = self._series.get((device, quantity))
        if sid is None:
            return []
        try:
            if step_ms is None:
                cur = self._db.execute(
                    "SELECT ts, value FROM points WHERE series = ? AND ts >= ? AND ts < ? AND flags = 0 ORDER BY ts",
                    (sid, start_ms, end_ms),
                )
                return [Point(ts, v, v, v, 1) for ts, v in cur]
            first, end = bucket_edges(start_ms, end_ms, step_ms)
            table = next((t for width, t in ROLLUPS if step_ms % width == 0), None)
            if table is None:
                sql = (
                    "SELECT ts - ts % ?1 AS b, sum(value), count(*), min(value), max(value) FROM points"
                    " WHERE series = ?2 AND ts >= ?3 AND ts < ?4 AND flags = 0 GROUP BY b ORDER BY b"
                )
            else:
                sql = (
                    f"SELECT ts - ts % ?1 AS b, sum(sum), sum(count), min(min), max(max) FROM {table}"
                    " WHERE series = ?2 AND ts >= ?3 AND ts < ?4 GROUP BY b ORDER BY b"
                )
            cur = self._db.execute(sql, (step_ms, sid, first, end))
            return [Point(b, s / n, lo, hi, n) for b, s, n, lo, hi in cur]
        except sqlite3.Error as exc:
            raise StoreError(f"series query failed: {exc}") from exc

    def readings(self, device: str, quantity: str, start_ms: int, end_ms: int) -> list[Reading]:
        """Return every stored reading of one series in [start_ms, end_ms), any quality, by time."""
        sid = self._series.get((device, quantity))
        if sid is None:
            return []
        unit = self._units[sid]
        try:
            cur = self._db.execute(
                "SELECT ts, value, flags FROM points WHERE series = ? AND ts >= ? AND ts < ? ORDER BY ts",
                (sid, start_ms, end_ms),
            )
            return [Reading(device, quantity, v, unit, ts, *_UNFLAG[f]) for ts, v, f in cur]
        except sqlite3.Error as exc:
            raise StoreError(f"series read failed: {exc}") from exc

    def prune(self, now_ms: int) -> dict[str, int]:
        """Delete what retention no longer keeps; return rows deleted per table; refuse older writes after."""
        ret = self.retention
        # Cut on hour boundaries so no minute or hour bucket is left with part of its points.
        cuts = {"points": ret.raw_ms, "rollup_1m": ret.minute_ms, "rollup_1h": ret.hour_ms}
        deleted: dict[str, int] = {}
        try:
            self._db.execute("BEGIN IMMEDIATE")
            ids = [(sid,) for sid in self._series.values()]
            for table, keep in cuts.items():
                if keep is None:
                    deleted[table] = 0
                    continue
                cutoff = (now_ms - keep) - (now_ms - keep) % HOUR_MS
                before = self._db.total_changes
                # Per series, so each delete is a range scan of the primary key, not a full table scan.
                self._db.executemany(f"DELETE FROM {table} WHERE series = ? AND ts < {int(cutoff)}", ids)
                deleted[table] = self._db.total_changes - before
                if table == "points" and cutoff > self._horizon:
                    self._horizon = cutoff
                    self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('raw_horizon', ?)", (cutoff,))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"series prune failed: {exc}") from exc
        return deleted

    @property
    def horizon_ms(self) -> int:
        """Writes older than this are refused: raw points before it have been pruned."""
        return self._horizon

    def close(self) -> None:
        """Close the database file."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
