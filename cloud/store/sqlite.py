"""The embedded series store: Readings into one SQLite file with 1-minute and 1-hour rollups, Points out.

Raw points live in a WITHOUT ROWID table keyed (series, ts) and are inserted with INSERT OR IGNORE, so a
re-sent reading changes nothing. Rollups (sum, count, min, max of good readings) are kept exact:

- fast path: when every row of a batch was new (the change count equals the batch size), the batch's own
  per-minute aggregates are to be added to the rollups;
- slow path: when some rows were ignored (a replay or an overlap), the minute buckets the batch touched
  are to be recomputed from the raw points.

Rollups are brought up to date behind the writes, not in every batch: a batch appends its minute
aggregates (or the buckets to recompute) as one blob to `rollup_pending`, in its own transaction, and a
flush merges all pending blobs into one upsert per touched minute and hour bucket. Ingest batches of a
district's thousands of series each touch every series' current minute and hour, so per-batch upserts
cost a fifth of the write; merged, they cost a few per series per flush. A flush runs once enough
readings are pending, before any query, retention pass or close, and at open (after a crash): queries
always see exact rollups, and the pending log is as durable as the points it describes.

Retention (`prune`) cuts on hour boundaries and raises a horizon below which writes are refused (counted
as `too_old`), so a bucket is never recomputed from partly deleted points.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt

from cloud.store import DAY_MS, HOUR_MS, MINUTE_MS, Point, StoreError, bucket_edges
from cloud.store.columns import Key, Mark, ReadingColumns, columns_of_rows
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
CREATE TABLE IF NOT EXISTS rollup_pending (id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, data BLOB NOT NULL);
"""

# Rows per INSERT statement: executemany pays SQLite's statement step and reset and Python's binding loop
# per row; a multi-row VALUES list pays them per statement (measured 1.5 us per row against 2.9).
# 240 rows of 4 parameters stay under the 999 parameters of old SQLite builds.
ROWS_PER_INSERT: Final = 240


@functools.cache
def insert_points_sql(rows: int, width: int) -> str:
    """Return INSERT OR IGNORE of `rows` points of `width` parameters (3: flags are 0, good readings)."""
    row = "(?, ?, ?, ?)" if width == 4 else "(?, ?, ?, 0)"
    return f"INSERT OR IGNORE INTO points (series, ts, value, flags) VALUES {', '.join([row] * rows)}"


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
# The same codes keyed by wire strings, as ReadingColumns carries them.
WIRE_FLAGS: Final[dict[Mark, int]] = {(q.value, None if r is None else r.value): f for (q, r), f in FLAGS.items()}
# Negative = KiB. Each batch touches one leaf page per series, so the hot pages of all series must fit.
CACHE_KIB: Final = -65_536
# Every batch dirties about one leaf page per series; checkpointing every 2,500 pages (~40 MB of WAL) rather
# than the default 1k copies a hot page into the main file once per several batches, not after each one
# (measured about +10 % store write rate with 2,000 series on a noisy 2-core machine); 2,500 of the 16 KiB
# pages keep the WAL at that size (10k of them measured no faster). FULL, because ingest
# acks a batch to the broker once it is committed: with NORMAL a power cut could lose the last commits
# after their acks (a killed process loses nothing either way: tests/cloud/test_ingest_kill.py). It costs
# one fsync per batch: 1.3 ms per commit here, under 0.1 us per reading at ingest's batch sizes.
PRAGMAS: Final = (
    # 16 KiB pages: fewer levels and splits for ingest's per-series appends (measured 8-12 % less CPU per
    # inserted row than 4 KiB; 32-64 KiB were no better). Takes effect in a new file only, before WAL.
    "PRAGMA page_size=16384",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA cache_size={CACHE_KIB}",
    "PRAGMA wal_autocheckpoint=2500",
)


# rollup_pending blobs: per-minute aggregates of an all-new batch, or minute buckets to recompute.
ADD, RECOMPUTE = 0, 1
_DELTA: Final = np.dtype(
    [("sid", "<i8"), ("start", "<i8"), ("sum", "<f8"), ("count", "<i8"), ("min", "<f8"), ("max", "<f8")]
)
_KEY: Final = np.dtype([("sid", "<i8"), ("start", "<i8")])
# Flush once this many readings' rollups are pending (about one second of a busy district's ingest).
FLUSH_READINGS: Final = 262_144

# Rollup tables by bucket width, widest first: a query uses the widest one that divides its step.
ROLLUPS: Final[tuple[tuple[int, str], ...]] = ((HOUR_MS, "rollup_1h"), (MINUTE_MS, "rollup_1m"))

# Per bucket, sorted by (series, start): series ids, bucket starts, sums, counts, minima, maxima.
_Aggs = tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]


def _starts(sid: npt.NDArray[np.int64], start: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Return where each run of equal (sid, start) begins in arrays sorted by (sid, start)."""
    change = np.empty(len(sid), dtype=np.bool_)
    change[:1] = True
    change[1:] = (sid[1:] != sid[:-1]) | (start[1:] != start[:-1])
    return np.flatnonzero(change)


def _buckets(
    sid: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], value: npt.NDArray[np.float64], width: int
) -> _Aggs:
    """Aggregate values sorted by (sid, ts) per (sid, bucket of `width` ms)."""
    start = ts - ts % width
    at = _starts(sid, start)
    if not len(at):
        return sid, start, value, sid, value, value  # all empty
    count = np.diff(np.append(at, len(sid)))
    return (
        sid[at],
        start[at],
        np.add.reduceat(value, at),
        count,
        np.minimum.reduceat(value, at),
        np.maximum.reduceat(value, at),
    )


def _rebucket(aggs: _Aggs, width: int) -> _Aggs:
    """Aggregate finer buckets (sorted) into buckets of `width` ms."""
    sid, start, total, count, low, high = aggs
    coarse = start - start % width
    at = _starts(sid, coarse)
    if not len(at):
        return aggs
    return (
        sid[at],
        coarse[at],
        np.add.reduceat(total, at),
        np.add.reduceat(count, at),
        np.minimum.reduceat(low, at),
        np.maximum.reduceat(high, at),
    )


def _to_records(aggs: _Aggs) -> bytes:
    """Return minute aggregates as a rollup_pending blob."""
    records = np.empty(len(aggs[0]), dtype=_DELTA)
    for name, column in zip(_DELTA.names or (), aggs, strict=True):
        records[name] = column
    return records.tobytes()


def _from_records(records: npt.NDArray[np.void]) -> _Aggs:
    """Return aggregate records sorted by (sid, start) and merged per bucket."""
    records = records[np.lexsort((records["start"], records["sid"]))]
    aggs = tuple(records[name] for name in _DELTA.names or ())
    # Starts are minute-aligned already, so rebucketing by the minute merges equal (sid, start) runs.
    return _rebucket(aggs, MINUTE_MS)  # type: ignore[arg-type]


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

    # Ingest may hand `write_columns` decoded columns instead of Readings (cloud.ingest.apply checks this).
    takes_columns: Final = True

    def __init__(self, path: Path | str, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self.stats: Counter[str] = Counter()
        self._closed = False
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in PRAGMAS:
                self._db.execute(pragma)
            self._db.executescript(SCHEMA)
            self._load_series()
            row = self._db.execute("SELECT value FROM meta WHERE key = 'raw_horizon'").fetchone()
            self._horizon: int = row[0] if row else -(2**63)
            # Readings whose rollups are pending; any left by a crash are flushed right away.
            self._pending = 0
            self._flush_now()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open series store {path}: {exc}") from exc

    def _load_series(self) -> None:
        rows = self._db.execute("SELECT id, device, quantity, unit FROM series").fetchall()
        self._series: dict[tuple[str, str], int] = {(d, q): i for i, d, q, _ in rows}
        # device -> quantity -> id: two C-level lookups per row and no key tuple to allocate.
        self._by_device: dict[str, dict[str, int]] = {}
        for i, d, q, _ in rows:
            self._by_device.setdefault(d, {})[q] = i
        self._units: dict[int, str] = {i: u for i, _, _, u in rows}

    def _add_series(self, keys: list[tuple[str, str]], units: Sequence[str]) -> None:
        """Create the series of `keys` not seen yet (unit from their first row), then reload the id cache."""
        new: dict[tuple[str, str], str] = {}
        for key, unit in zip(keys, units, strict=True):
            if key not in self._series and key not in new:
                new[key] = unit
        self._db.executemany(
            "INSERT OR IGNORE INTO series (device, quantity, unit) VALUES (?, ?, ?)",
            [(d, q, u) for (d, q), u in new.items()],
        )
        self._load_series()

    def write(self, rows: Sequence[Reading] | Sequence[Sequence[Any]]) -> int:
        """Store readings in one transaction; return how many were new (duplicates count 0).

        Besides Readings it takes validated wire rows `[device, quantity, value, unit, ts_ms, quality,
        reason]` (quality and reason as wire strings); ingest hands `write_columns` columns instead.
        """
        return self.write_columns(columns_of_rows(rows))

    def write_columns(self, cols: ReadingColumns) -> int:
        """Store readings given as columns in one transaction; return how many were new."""
        refused = Counter[str]()
        if cols.too_new:
            refused["too_new"] += cols.too_new
        try:
            self._db.execute("BEGIN IMMEDIATE")
            taken, new = self._insert(cols, refused) if len(cols) else (0, 0)
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"series write failed: {exc}") from exc
            raise
        self.stats.update(refused)
        self.stats["written"] += new
        self.stats["duplicate"] += taken - new
        return new

    def _series_ids(self, keys: Sequence[Key], used: Sequence[int] | None) -> npt.NDArray[np.int64]:
        """Return the series id of each key (-1 for keys not `used`), creating new series first."""
        wanted = keys if used is None else [keys[i] for i in used]
        try:
            sids = [self._by_device[d][q] for d, q, _ in wanted]
        except KeyError:
            self._add_series([(d, q) for d, q, _ in wanted], [u for _, _, u in wanted])
            sids = [self._by_device[d][q] for d, q, _ in wanted]
        if used is None:
            return np.array(sids, dtype=np.int64)
        table = np.full(len(keys), -1, dtype=np.int64)
        table[list(used)] = sids
        return table

    def _insert(self, cols: ReadingColumns, refused: Counter[str]) -> tuple[int, int]:
        """Insert the admissible readings and update the rollups; return (readings taken, readings new)."""
        ts, value, key, mark = cols.ts, cols.value, cols.key, cols.mark
        keep = None
        if ts.min() < self._horizon or not np.isfinite(value).all():
            old = ts < self._horizon
            bad = ~np.isfinite(value) & ~old
            refused["too_old"] += int(old.sum())
            refused["not_finite"] += int(bad.sum())
            keep = ~(old | bad)
            ts, value, key = ts[keep], value[keep], key[keep]
            mark = mark[keep] if mark is not None else None
            if not len(ts):
                return 0, 0
        sid = self._series_ids(cols.keys, None if keep is None else np.unique(key).tolist())[key]
        n = len(sid)
        # Sorted by (series, ts), stable so the first of repeated keys still wins: the B-tree gets appends
        # per series, and the good readings come out grouped by (series, minute) for the rollups.
        order = np.lexsort((ts, sid))
        sid, ts, value = sid[order], ts[order], value[order]
        before = self._db.total_changes
        if mark is None:
            # The common batch: no flag column built at all, the statement says 0.
            self._insert_points([sid.tolist(), ts.tolist(), value.tolist()])
            new = self._db.total_changes - before
            minutes = _buckets(sid, ts, value, MINUTE_MS)
        else:
            flag = np.array([WIRE_FLAGS[m] for m in cols.marks], dtype=np.int64)[mark][order]
            self._insert_points([sid.tolist(), ts.tolist(), value.tolist(), flag.tolist()])
            new = self._db.total_changes - before
            good = flag == 0
            minutes = _buckets(sid[good], ts[good], value[good], MINUTE_MS)
        if new:
            self._defer_rollups(minutes, exact=new == n, readings=n)
        return n, new

    def _insert_points(self, columns: list[list[Any]]) -> None:
        """INSERT OR IGNORE rows given as columns (series, ts, value[, flags]), many rows per statement."""
        width = len(columns)
        flat = list(itertools.chain.from_iterable(zip(*columns, strict=True)))
        step = ROWS_PER_INSERT * width
        full = len(flat) - len(flat) % step
        statement = insert_points_sql(ROWS_PER_INSERT, width)
        for at in range(0, full, step):
            self._db.execute(statement, flat[at : at + step])
        if full < len(flat):
            self._db.execute(insert_points_sql((len(flat) - full) // width, width), flat[full:])

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        # Series created in the rolled-back transaction are gone: rebuild the cache from the file.
        self._load_series()
        self._pending = FLUSH_READINGS  # unknown now: the next flush finds out

    def _defer_rollups(self, minutes: _Aggs, *, exact: bool, readings: int) -> None:
        """Log the batch's rollup work in its transaction; flush the log once enough is pending."""
        if exact:
            blob, kind = _to_records(minutes), ADD
        else:
            # Only buckets holding a good reading of this batch can have changed.
            keys = np.empty(len(minutes[0]), dtype=_KEY)
            keys["sid"], keys["start"] = minutes[0], minutes[1]
            blob, kind = keys.tobytes(), RECOMPUTE
        self._db.execute("INSERT INTO rollup_pending (kind, data) VALUES (?, ?)", (kind, blob))
        self._pending += readings
        if self._pending >= FLUSH_READINGS:
            self._flush_rollups()

    def flush(self) -> None:
        """Bring the rollup tables up to date (queries do this themselves)."""
        try:
            self._flush_now()
        except sqlite3.Error as exc:
            raise StoreError(f"series rollup flush failed: {exc}") from exc

    def _flush_now(self) -> None:
        if not self._pending and not self._db.execute("SELECT 1 FROM rollup_pending LIMIT 1").fetchone():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._flush_rollups()
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _flush_rollups(self) -> None:
        """Merge every pending blob into the rollups and empty the log (inside the caller's transaction)."""
        pending = self._db.execute("SELECT kind, data FROM rollup_pending ORDER BY id").fetchall()
        self._pending = 0
        if not pending:
            return
        deltas = np.concatenate(
            [np.frombuffer(b, dtype=_DELTA) for k, b in pending if k == ADD] or [np.empty(0, _DELTA)]
        )
        keys = np.concatenate(
            [np.frombuffer(b, dtype=_KEY) for k, b in pending if k == RECOMPUTE] or [np.empty(0, _KEY)]
        )
        recompute = set(zip(keys["sid"].tolist(), keys["start"].tolist(), strict=True))
        hours_recompute = {(sid, start - start % HOUR_MS) for sid, start in recompute}
        # A recomputed bucket is read from the points, which already hold its pending additions.
        if recompute:
            self._db.executemany(_RECOMPUTE_1M, sorted(recompute))
            minutes = _from_records(
                deltas[[k not in recompute for k in zip(deltas["sid"].tolist(), deltas["start"].tolist(), strict=True)]]
            )
        else:
            minutes = _from_records(deltas)
        self._db.executemany(_ADD_ROLLUP.format(table="rollup_1m"), zip(*(a.tolist() for a in minutes), strict=True))
        hours = _rebucket(minutes, HOUR_MS)
        if hours_recompute:
            keep = [k not in hours_recompute for k in zip(hours[0].tolist(), hours[1].tolist(), strict=True)]
            hours = tuple(a[keep] for a in hours)  # type: ignore[assignment]
        self._db.executemany(_ADD_ROLLUP.format(table="rollup_1h"), zip(*(a.tolist() for a in hours), strict=True))
        # After the minute rollups are final: an hour is recomputed from its minutes.
        self._db.executemany(_RECOMPUTE_1H, sorted(hours_recompute))
        self._db.execute("DELETE FROM rollup_pending")

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
            if table is not None:
                self._flush_now()
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
            self._flush_now()  # no pending bucket may refer to points about to go
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
        """Flush the rollups and close the database file (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._flush_now()
        finally:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
