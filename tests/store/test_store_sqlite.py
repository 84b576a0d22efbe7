"""SqliteSeriesStore: round trip, idempotency, order independence, rollups vs raw, retention, quality."""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.store import HOUR_MS, MINUTE_MS, Point, SeriesStore, StoreError, bucket_edges
from cloud.store import sqlite as sqlite_store
from cloud.store.memory import MemorySeriesStore
from cloud.store.sqlite import FLAGS, Retention, SqliteSeriesStore
from gateway.readings import Quality, Reading, Reason

T0 = 1_718_000_000_000 - 1_718_000_000_000 % HOUR_MS  # an hour boundary


def make_readings(n: int, seed: int = 1, devices: int = 3, spread_ms: int = 3 * HOUR_MS) -> list[Reading]:
    """Return `n` readings with unique (device, quantity, ts), random values, ~20 % suspect or bad."""
    rng = random.Random(seed)
    seen: set[tuple[str, str, int]] = set()
    out: list[Reading] = []
    while len(out) < n:
        device, quantity = f"dev-{rng.randrange(devices)}", rng.choice(["pm25", "noise"])
        ts = T0 + rng.randrange(spread_ms)
        if (device, quantity, ts) in seen:
            continue
        seen.add((device, quantity, ts))
        roll = rng.random()
        quality, reason = (
            (Quality.GOOD, None)
            if roll < 0.8
            else (Quality.SUSPECT, Reason.STALE)
            if roll < 0.9
            else (Quality.BAD, Reason.OUT_OF_RANGE)
        )
        unit = "ug/m3" if quantity == "pm25" else "dB(A)"
        out.append(Reading(device, quantity, rng.uniform(-50, 150), unit, ts, quality, reason))
    return out


def snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Return every data row keyed by (device, quantity), sorted, read through a new connection."""
    db = sqlite3.connect(path)
    try:
        # Series ids depend on first-write order, so rows are keyed by (device, quantity) instead.
        columns = {"points": "ts, value, flags", "rollup_1m": "ts, sum, count, min, max"}
        columns["rollup_1h"] = columns["rollup_1m"]
        return {
            t: sorted(db.execute(f"SELECT device, quantity, {c} FROM {t} JOIN series ON id = series").fetchall())
            for t, c in columns.items()
        }
    finally:
        db.close()


def expected(
    readings: list[Reading], device: str, quantity: str, start: int, end: int, step: int | None
) -> list[Point]:
    """Compute the query answer directly from the raw readings."""
    good = sorted(
        (r.ts_ms, r.value)
        for r in readings
        if r.device == device and r.quantity == quantity and r.quality is Quality.GOOD
    )
    if step is None:
        return [Point(ts, v, v, v, 1) for ts, v in good if start <= ts < end]
    first, last = bucket_edges(start, end, step)
    buckets: dict[int, list[float]] = {}
    for ts, v in good:
        if first <= ts < last:
            buckets.setdefault(ts - ts % step, []).append(v)
    return [Point(b, sum(vs) / len(vs), min(vs), max(vs), len(vs)) for b, vs in sorted(buckets.items())]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteSeriesStore]:
    """A fresh store in a temp file."""
    with SqliteSeriesStore(tmp_path / "series.db") as s:
        yield s


def test_round_trip_keeps_every_reading_with_quality(store: SqliteSeriesStore) -> None:
    """Every written reading, with its unit, quality and reason, reads back unchanged."""
    readings = make_readings(500)
    assert store.write(readings) == 500
    for device, quantity in {(r.device, r.quantity) for r in readings}:
        want = sorted((r for r in readings if (r.device, r.quantity) == (device, quantity)), key=lambda r: r.ts_ms)
        assert store.readings(device, quantity, T0, T0 + 4 * HOUR_MS) == want
    assert store.readings("nobody", "pm25", T0, T0 + HOUR_MS) == []
    assert store.query("nobody", "pm25", T0, T0 + HOUR_MS, MINUTE_MS) == []


def test_rewrite_changes_nothing(store: SqliteSeriesStore, tmp_path: Path) -> None:
    """Writing the same batch twice leaves points and both rollups exactly as after the first write."""
    readings = make_readings(800)
    store.write(readings)
    store.flush()
    before = snapshot(tmp_path / "series.db")
    assert store.write(readings) == 0
    assert store.write(readings[100:300]) == 0
    store.flush()
    assert snapshot(tmp_path / "series.db") == before
    assert store.stats["written"] == 800
    assert store.stats["duplicate"] == 1000


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_any_order_and_overlap_gives_the_same_state(
    tmp_path_factory: pytest.TempPathFactory, seed: int, cuts: list[int]
) -> None:
    """Shuffled, split and overlapping batches end in the same points and rollups as one ordered write."""
    rng = random.Random(seed)
    # Quarter values keep every float sum exact, so the state must match bit for bit.
    readings = [
        Reading(r.device, r.quantity, rng.randrange(-400, 400) / 4, r.unit, r.ts_ms, r.quality, r.reason)
        for r in make_readings(300, seed=seed, spread_ms=2 * HOUR_MS)
    ]
    folder = tmp_path_factory.mktemp("order")
    with SqliteSeriesStore(folder / "a.db") as a:
        a.write(sorted(readings, key=lambda r: r.ts_ms))
    shuffled = readings[:]
    rng.shuffle(shuffled)
    bounds = [0, *sorted(cuts), len(shuffled)]
    with SqliteSeriesStore(folder / "b.db") as b:
        for lo, hi in itertools.pairwise(bounds):
            # Each batch also re-sends a few readings of an earlier one, as a replay would.
            b.write(shuffled[lo:hi] + shuffled[max(0, lo - 7) : lo])
    assert snapshot(folder / "b.db") == snapshot(folder / "a.db")


@pytest.mark.parametrize("step", [None, 7_000, MINUTE_MS, 5 * MINUTE_MS, HOUR_MS, 2 * HOUR_MS])
def test_downsampling_equals_direct_computation(store: SqliteSeriesStore, step: int | None) -> None:
    """Raw, raw-aggregated, minute- and hour-rollup queries (and the memory store) equal a direct computation."""
    readings = make_readings(3000, devices=2)
    memory = MemorySeriesStore()
    stores: list[SeriesStore] = [store, memory]
    for s in stores:
        # Written in several batches, so the rollups are built incrementally.
        for i in range(0, len(readings), 700):
            s.write(readings[i : i + 700])
        s.write(readings[500:1500])  # an overlapping replay takes the recompute path
    start, end = T0 + 12_345, T0 + 2 * HOUR_MS + 54_321
    for device, quantity in [("dev-0", "pm25"), ("dev-1", "noise")]:
        want = expected(readings, device, quantity, start, end, step)
        for s in stores:
            got = s.query(device, quantity, start, end, step)
            assert [(p.ts_ms, p.count, p.min, p.max) for p in got] == [(p.ts_ms, p.count, p.min, p.max) for p in want]
            assert [p.mean for p in got] == pytest.approx([p.mean for p in want], rel=1e-12)
    memory.close()


def test_suspect_and_bad_are_stored_but_not_aggregated(store: SqliteSeriesStore) -> None:
    """Suspect and bad readings keep their quality and reason yet count in no rollup or query."""
    readings = [
        Reading("d", "pm25", 10.0, "ug/m3", T0 + 1_000),
        Reading("d", "pm25", 999.0, "ug/m3", T0 + 2_000, Quality.SUSPECT, Reason.STALE),
        Reading("d", "pm25", -5.0, "ug/m3", T0 + 3_000, Quality.BAD, Reason.CHECKSUM),
        Reading("d", "pm25", 20.0, "ug/m3", T0 + 4_000),
    ]
    store.write(readings)
    assert store.readings("d", "pm25", T0, T0 + MINUTE_MS) == readings
    assert store.query("d", "pm25", T0, T0 + MINUTE_MS) == [
        Point(T0 + 1_000, 10, 10, 10, 1),
        Point(T0 + 4_000, 20, 20, 20, 1),
    ]
    for step in (30_000, MINUTE_MS, HOUR_MS):
        assert store.query("d", "pm25", T0, T0 + MINUTE_MS, step) == [Point(T0, 15.0, 10.0, 20.0, 2)]


def test_only_bad_readings_leave_no_bucket(store: SqliteSeriesStore) -> None:
    """A bucket holding only bad readings yields no point, not a zero-count one."""
    store.write([Reading("d", "pm25", 1.0, "ug/m3", T0 + 5, Quality.BAD, Reason.CLOCK)])
    store.write([Reading("d", "pm25", 1.0, "ug/m3", T0 + 5, Quality.BAD, Reason.CLOCK)])
    assert store.query("d", "pm25", T0, T0 + HOUR_MS, MINUTE_MS) == []
    assert store.query("d", "pm25", T0, T0 + HOUR_MS, HOUR_MS) == []


def test_prune_applies_retention_and_refuses_older_writes(tmp_path: Path) -> None:
    """prune drops each resolution past its retention, and writes older than the raw cut are refused."""
    retention = Retention(raw_ms=2 * HOUR_MS, minute_ms=4 * HOUR_MS, hour_ms=6 * HOUR_MS)
    readings = [Reading("d", "pm25", float(h), "ug/m3", T0 + h * HOUR_MS + 30_000) for h in range(10)]
    path = tmp_path / "series.db"
    with SqliteSeriesStore(path, retention) as store:
        store.write(readings)
        now = T0 + 10 * HOUR_MS + 1_234
        deleted = store.prune(now)
        # Cut-offs round down to the hour: raw keeps hours 8-9, minutes hours 6-9, hours 4-9.
        assert deleted == {"points": 8, "rollup_1m": 6, "rollup_1h": 4}
        assert [r.value for r in store.readings("d", "pm25", T0, now)] == [8.0, 9.0]
        assert [p.mean for p in store.query("d", "pm25", T0, now, MINUTE_MS)] == [6.0, 7.0, 8.0, 9.0]
        assert [p.mean for p in store.query("d", "pm25", T0, now, HOUR_MS)] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        assert store.write(readings[:8]) == 0
        assert store.stats["too_old"] == 8
        assert store.prune(now) == {"points": 0, "rollup_1m": 0, "rollup_1h": 0}
    with SqliteSeriesStore(path, retention) as reopened:
        assert reopened.horizon_ms == T0 + 8 * HOUR_MS
        assert reopened.write(readings) == 0
        assert reopened.stats["too_old"] == 8
        assert reopened.stats["duplicate"] == 2


def test_retention_must_not_shrink() -> None:
    """A minute retention shorter than the raw one is refused at construction."""
    with pytest.raises(ValueError, match="retention"):
        Retention(raw_ms=2 * HOUR_MS, minute_ms=HOUR_MS)


def test_non_finite_values_are_refused_and_counted(store: SqliteSeriesStore) -> None:
    """NaN and infinite values are counted and not stored; the rest of the batch is."""
    readings = [
        Reading("d", "pm25", float("nan"), "ug/m3", T0),
        Reading("d", "pm25", float("inf"), "ug/m3", T0 + 1),
        Reading("d", "pm25", 3.0, "ug/m3", T0 + 2),
    ]
    assert store.write(readings) == 1
    assert store.stats["not_finite"] == 2
    assert [r.value for r in store.readings("d", "pm25", T0, T0 + 10)] == [3.0]


def test_failed_write_rolls_back_new_series(store: SqliteSeriesStore) -> None:
    """A batch failing midway leaves no points or new series behind, and the store stays usable."""
    good = Reading("new", "pm25", 1.0, "ug/m3", T0)
    broken = Reading("other", "pm25", 1.0, "ug/m3", "not a time")  # type: ignore[arg-type]
    store.write([Reading("old", "pm25", 1.0, "ug/m3", T0)])
    with pytest.raises(TypeError):
        store.write([good, broken])
    assert store.readings("new", "pm25", T0, T0 + 1) == []
    assert store.write([good]) == 1
    assert store.readings("new", "pm25", T0, T0 + 1) == [good]


def test_every_quality_and_reason_has_a_stored_code() -> None:
    """Each (quality, reason) pair maps to a distinct flags code, and only good-without-reason is 0."""
    pairs = [(q, r) for q in Quality for r in [None, *Reason]]
    assert set(FLAGS) == set(pairs)
    assert len(set(FLAGS.values())) == len(pairs)
    assert [p for p, code in FLAGS.items() if code == 0] == [(Quality.GOOD, None)]


def test_unopenable_file_raises_store_error(tmp_path: Path) -> None:
    """A path that cannot hold a database raises StoreError, not a bare sqlite3 error."""
    with pytest.raises(StoreError):
        SqliteSeriesStore(tmp_path / "missing" / "series.db")


def test_pending_rollups_survive_a_crash(tmp_path: Path) -> None:
    """Rollup work logged but not flushed when the process dies is flushed at the next open, exactly."""
    # Quarter values keep every float sum exact, so the state must match bit for bit.
    readings = [
        Reading(r.device, r.quantity, i % 400 / 4, r.unit, r.ts_ms, r.quality, r.reason)
        for i, r in enumerate(make_readings(600))
    ]
    crashed = SqliteSeriesStore(tmp_path / "crash.db")
    crashed.write(readings[:400])
    crashed.write(readings[200:])  # overlaps: logs buckets to recompute as well as additions
    crashed._db.close()  # no flush: as if killed
    with SqliteSeriesStore(tmp_path / "whole.db") as whole:
        whole.write(readings)
    with SqliteSeriesStore(tmp_path / "crash.db") as reopened:
        assert reopened._db.execute("SELECT count(*) FROM rollup_pending").fetchone() == (0,)
    assert snapshot(tmp_path / "crash.db") == snapshot(tmp_path / "whole.db")


def test_rollups_flush_by_themselves_once_enough_is_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past FLUSH_READINGS pending readings a write flushes the log in its own transaction."""
    monkeypatch.setattr(sqlite_store, "FLUSH_READINGS", 250)
    readings = make_readings(600)
    with SqliteSeriesStore(tmp_path / "s.db") as store:
        pending = "SELECT count(*) FROM rollup_pending"
        store.write(readings[:200])
        assert store._db.execute(pending).fetchone() == (1,)
        store.write(readings[200:400])
        assert store._db.execute(pending).fetchone() == (0,)
        assert store._db.execute("SELECT sum(count) FROM rollup_1h").fetchone() == (
            sum(r.quality is Quality.GOOD for r in readings[:400]),
        )
