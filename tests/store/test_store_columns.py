"""ReadingColumns: wire rows and Readings become columns and back unchanged; the store writes them like rows."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.store.columns import MAX_TS, columns_of_rows, concat
from cloud.store.sqlite import SqliteSeriesStore
from gateway.readings import Quality, Reading, Reason
from tests.store.test_store_sqlite_rows import wire

T0 = 1_700_000_000_000
READINGS = st.lists(
    st.builds(
        Reading,
        st.sampled_from(["d1", "d2", "d3"]),
        st.sampled_from(["pm25", "no2"]),
        st.floats(-1e6, 1e6),
        st.sampled_from(["ug/m3", "mg/m3"]),
        st.integers(T0, T0 + 3 * 3_600_000),
        st.sampled_from(list(Quality)),
        st.sampled_from([None, Reason.STALE, Reason.OUT_OF_RANGE]),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(READINGS)
def test_rows_and_readings_round_trip_through_columns(readings: list[Reading]) -> None:
    """Columns of wire rows give the same rows back, in order; Readings give the same columns as their rows."""
    rows = [wire(r) for r in readings]
    cols = columns_of_rows(rows)
    assert cols.rows() == rows
    assert columns_of_rows(readings) == cols
    assert cols.all_good == all(r.quality is Quality.GOOD and r.reason is None for r in readings)
    assert len(cols) == len(readings)
    assert cols.too_new == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(READINGS, max_size=5))
def test_concat_equals_the_columns_of_all_rows(parts: list[list[Reading]]) -> None:
    """Concatenated columns hold the parts' readings in order, whatever tables each part had."""
    joined = concat([columns_of_rows(p) for p in parts])
    assert joined.rows() == [wire(r) for p in parts for r in p]


@settings(max_examples=200, deadline=None)
@given(READINGS)
def test_newest_per_device_is_each_devices_latest_stamp(readings: list[Reading]) -> None:
    """Each device maps to the largest stamp among its readings."""
    expected: dict[str, int] = {}
    for r in readings:
        expected[r.device] = max(expected.get(r.device, -1), r.ts_ms)
    assert columns_of_rows(readings).newest_per_device() == expected


def test_stamps_beyond_64_bits_are_left_out_and_counted() -> None:
    """A stamp no int64 holds is counted in too_new; its batch-mates keep their order."""
    good = wire(Reading("d1", "pm25", 1.0, "ug/m3", T0))
    later = wire(Reading("d2", "pm25", 2.0, "ug/m3", T0 + 1))
    cols = columns_of_rows([good, [*good[:4], MAX_TS + 1, *good[5:]], later])
    assert (cols.rows(), cols.too_new) == ([good, later], 1)


def test_store_refuses_old_columns_without_creating_their_series(tmp_path: Path) -> None:
    """Readings below the retention horizon are counted too_old and leave no empty series behind."""
    with SqliteSeriesStore(tmp_path / "s.db") as store:
        store.write([Reading("d1", "pm25", 1.0, "ug/m3", T0)])
        store.prune(T0 + 40 * 86_400_000)
        cols = columns_of_rows([Reading("old", "pm25", 1.0, "ug/m3", T0), Reading("d1", "pm25", 2.0, "ug/m3", T0)])
        assert store.write_columns(cols) == 0
        assert store.stats["too_old"] == 2
        assert store._db.execute("SELECT count(*) FROM series WHERE device = 'old'").fetchone() == (0,)
