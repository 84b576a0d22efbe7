"""LineProtocolStore against a real VictoriaMetrics: round trip, dedup, escaping, downsampling."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest

from cloud.store import HOUR_MS, MINUTE_MS, Point, SeriesStore, StoreError, bucket_edges
from cloud.store.lineprotocol import LineProtocolStore
from gateway.readings import Quality, Reading, Reason
from tests.support.victoria import VictoriaMetrics, free_port, poll

pytestmark = pytest.mark.integration

# Near now (VictoriaMetrics refuses samples far outside its retention), on an hour boundary, in the past.
T0 = int(time.time() * 1000) // HOUR_MS * HOUR_MS - 3 * HOUR_MS


@pytest.fixture
def store(victoria: VictoriaMetrics) -> Iterator[LineProtocolStore]:
    """A LineProtocolStore writing to and querying the module's VictoriaMetrics."""
    s = LineProtocolStore(victoria.url, bucket="gridwatch", batch_size=1_000)
    yield s
    s.close()


def read_back(victoria: VictoriaMetrics, store: LineProtocolStore, device: str, quantity: str, n: int) -> list[Reading]:
    """Flush VictoriaMetrics, poll until `n` readings of the series are searchable, and return them."""
    victoria.flush()
    return poll(
        lambda: got if len(got := store.readings(device, quantity, T0, T0 + 3 * HOUR_MS)) >= n else None,
        what=f"{n} readings of {device}/{quantity} searchable",
    )


def test_round_trip_keeps_value_unit_and_quality(victoria: VictoriaMetrics, store: LineProtocolStore) -> None:
    """Readings written as line protocol read back with their value, unit, quality and reason."""
    readings = [
        Reading("rt-1", "pm25", 10.5, "ug/m3", T0 + 1_000),
        Reading("rt-1", "pm25", 11.25, "ug/m3", T0 + 2_000, Quality.SUSPECT, Reason.STALE),
        Reading("rt-1", "pm25", -1e-3, "ug/m3", T0 + 3_000, Quality.BAD, Reason.OUT_OF_RANGE),
    ]
    protocol: SeriesStore = store
    assert protocol.write(readings) == 3
    assert read_back(victoria, store, "rt-1", "pm25", 3) == readings
    assert store.query("rt-1", "pm25", T0, T0 + MINUTE_MS) == [Point(T0 + 1_000, 10.5, 10.5, 10.5, 1)]


def test_rewrites_do_not_duplicate_samples(victoria: VictoriaMetrics, store: LineProtocolStore) -> None:
    """Writing the same readings three times leaves each sample once (dedup.minScrapeInterval=1ms)."""
    readings = [Reading("dup-1", "noise", float(i), "dB(A)", T0 + i * 1_000) for i in range(50)]
    for _ in range(3):
        store.write(readings)
    got = read_back(victoria, store, "dup-1", "noise", 50)
    assert got == readings
    assert [p.count for p in store.query("dup-1", "noise", T0, T0 + HOUR_MS, HOUR_MS)] == [50]


@pytest.mark.parametrize("device", ["井盖 7", "a,b", "k=v", 'all of ,= \\ "q"', "trail\\"])
def test_tag_escaping_round_trips(victoria: VictoriaMetrics, store: LineProtocolStore, device: str) -> None:
    """Device ids with spaces, commas, equals signs, backslashes and quotes survive write and query."""
    reading = Reading(device, "tilt", 1.5, "deg", T0 + 7_000)
    store.write([reading])
    assert read_back(victoria, store, device, "tilt", 1) == [reading]
    assert store.query(device, "tilt", T0, T0 + MINUTE_MS, MINUTE_MS) == [Point(T0, 1.5, 1.5, 1.5, 1)]


@pytest.mark.parametrize("step", [None, 10_000, MINUTE_MS, HOUR_MS])
def test_downsampling_equals_direct_computation(
    victoria: VictoriaMetrics, store: LineProtocolStore, step: int | None
) -> None:
    """query_range buckets [b, b + step) equal a direct computation, including samples on bucket edges."""
    rng = random.Random(7)
    device = f"ds-{step}"
    stamps = sorted({T0 + rng.randrange(2 * HOUR_MS) for _ in range(400)} | {T0 + MINUTE_MS, T0 + MINUTE_MS - 1})
    readings = [
        Reading(
            device,
            "pm25",
            rng.uniform(0, 100),
            "ug/m3",
            ts,
            *((Quality.GOOD, None) if rng.random() < 0.85 else (Quality.SUSPECT, Reason.CLOCK)),
        )
        for ts in stamps
    ]
    store.write(readings)
    read_back(victoria, store, device, "pm25", len(readings))
    start, end = T0 + 5_000, T0 + 2 * HOUR_MS - 5_000
    good = [(r.ts_ms, r.value) for r in readings if r.quality is Quality.GOOD]
    if step is None:
        want = [Point(ts, v, v, v, 1) for ts, v in good if start <= ts < end]
    else:
        first, last = bucket_edges(start, end, step)
        buckets: dict[int, list[float]] = {}
        for ts, v in good:
            if first <= ts < last:
                buckets.setdefault(ts - ts % step, []).append(v)
        want = [Point(b, sum(vs) / len(vs), min(vs), max(vs), len(vs)) for b, vs in sorted(buckets.items())]
    got = store.query(device, "pm25", start, end, step)
    assert [(p.ts_ms, p.count) for p in got] == [(p.ts_ms, p.count) for p in want]
    # VictoriaMetrics keeps about 12 significant digits of a float.
    flat = [x for p in got for x in (p.mean, p.min, p.max)]
    assert flat == pytest.approx([x for p in want for x in (p.mean, p.min, p.max)], rel=1e-10)


def test_refused_query_raises_store_error_with_the_reason(store: LineProtocolStore) -> None:
    """A query VictoriaMetrics refuses (too many points per series) raises StoreError carrying its answer."""
    with pytest.raises(StoreError, match=r"422|400"):
        store.query("d", "pm25", T0, T0 + HOUR_MS, 1)


def test_unreachable_server_raises_store_error() -> None:
    """A write or query to a closed port raises StoreError with the cause attached."""
    store = LineProtocolStore(f"http://127.0.0.1:{free_port()}", bucket="b", timeout_s=2)
    try:
        with pytest.raises(StoreError):
            store.write([Reading("d", "pm25", 1.0, "ug/m3", T0)])
        with pytest.raises(StoreError):
            store.query("d", "pm25", T0, T0 + 1)
    finally:
        store.close()
