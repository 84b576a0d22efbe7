"""SqliteSeriesStore takes wire rows and ReadingColumns (ingest's path) with exactly the effect of Readings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.store.columns import columns_of_rows, concat
from cloud.store.sqlite import SqliteSeriesStore
from gateway.readings import Quality, Reading, Reason

T0 = 1_700_000_000_000
READINGS = st.lists(
    st.builds(
        Reading,
        st.sampled_from(["d1", "d2"]),
        st.sampled_from(["pm25", "no2"]),
        st.floats(-1e6, 1e6),
        st.just("ug/m3"),
        st.integers(T0, T0 + 3 * 3_600_000),
        st.sampled_from(list(Quality)),
        st.sampled_from([None, Reason.STALE]),
    ),
    max_size=40,
)


def wire(r: Reading) -> list[Any]:
    """Return the reading as its wire row."""
    return [
        r.device,
        r.quantity,
        r.value,
        r.unit,
        r.ts_ms,
        r.quality.value,
        None if r.reason is None else r.reason.value,
    ]


def state(store: SqliteSeriesStore) -> tuple[object, ...]:
    """Return every table's rows (rollups brought up to date) and the store's counters."""
    store.flush()
    tables = ("series", "points", "rollup_1m", "rollup_1h")
    return (*(store._db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables), store.stats)


@settings(max_examples=100, deadline=None)
@given(st.lists(READINGS, min_size=1, max_size=4))
def test_rows_columns_and_readings_give_the_same_store(tmp_path_factory: Any, batches: list[list[Reading]]) -> None:
    """The same batches (with replays) as Readings, wire rows or joined columns leave the same points and rollups."""
    folder = tmp_path_factory.mktemp("s")
    with (
        SqliteSeriesStore(folder / "a.db") as a,
        SqliteSeriesStore(folder / "b.db") as b,
        SqliteSeriesStore(folder / "c.db") as c,
    ):
        for batch in [*batches, batches[0]]:
            half = len(batch) // 2
            cols = concat([columns_of_rows(batch[:half]), columns_of_rows(batch[half:])])
            assert a.write(batch) == b.write([wire(r) for r in batch]) == c.write_columns(cols)
        assert state(a) == state(b) == state(c)


def test_rows_with_int_stamps_older_than_the_horizon_are_counted(tmp_path: Path) -> None:
    """Wire rows below the retention horizon are refused and counted like Readings are."""
    with SqliteSeriesStore(tmp_path / "s.db") as store:
        store.write([wire(Reading("d", "pm25", 1.0, "ug/m3", T0))])
        store.prune(T0 + 40 * 86_400_000)
        assert store.write([wire(Reading("d", "pm25", 2.0, "ug/m3", T0 + 1))]) == 0
        assert store.stats["too_old"] == 1


def test_rows_with_stamps_beyond_64_bits_are_refused_and_counted(tmp_path: Path) -> None:
    """A wire row whose ts_ms no SQLite integer holds is counted as too_new; its batch-mates are stored."""
    with SqliteSeriesStore(tmp_path / "s.db") as store:
        good = wire(Reading("d", "pm25", 1.0, "ug/m3", T0))
        assert store.write([good, [*good[:4], 2**64, *good[5:]]]) == 1
        assert store.stats["too_new"] == 1
        assert [r.ts_ms for r in store.readings("d", "pm25", 0, T0 + 1)] == [T0]
