"""Tests for the durable buffer: lanes, seq, resend, ack, the byte bound and its drop counts, autonomy."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.buffer import (
    ROW_OVERHEAD,
    STATUS_KEEP,
    Batch,
    BufferLockedError,
    DurableBuffer,
    DurableBufferError,
    FsyncPolicy,
)
from gateway.alerts import AlertEvent, AlertState
from gateway.contract import Envelope, Lane, decode_envelope, encode_alert, encode_reading
from gateway.readings import Reading

GW = "gw-test-1"
BIG = 1 << 30


def readings(n: int, start: int = 0) -> list[Reading]:
    """Return n readings whose value and ts carry their index, so order and identity are checkable."""
    return [Reading(f"dev-{i % 7}", "pm10", float(i), "ug/m3", 1_700_000_000_000 + i) for i in range(start, start + n)]


def alerts(n: int, start: int = 0) -> list[AlertEvent]:
    """Return n alert events of this test gateway, numbered by ts."""
    return [
        AlertEvent(GW, f"dev-{i}", "gas_high", AlertState.FIRING, 2, 1_700_000_000_000 + i)
        for i in range(start, start + n)
    ]


def open_buffer(path: Path, max_bytes: int = BIG, fsync: FsyncPolicy = FsyncPolicy.NORMAL) -> DurableBuffer:
    """Open the test gateway's buffer at path."""
    return DurableBuffer(path / "buffer.db", gateway=GW, max_bytes=max_bytes, fsync=fsync)


def drain(buf: DurableBuffer, *, max_items: int = 1000, ack: bool = True, now_ms: int = 0) -> list[Batch]:
    """Seal and (optionally) ack until nothing is left; return every batch seen."""
    seen: list[Batch] = []
    while batches := buf.next_batches(8, max_items=max_items, max_bytes=1 << 20, now_ms=now_ms):
        seen.extend(batches)
        if not ack:
            return seen
        for batch in batches:
            buf.ack(batch.seq)
    return seen


def envelopes(batches: list[Batch]) -> list[Envelope]:
    """Decode every batch payload, checking that its header agrees with the Batch record."""
    out = []
    for batch in batches:
        env = decode_envelope(batch.payload)
        assert (env.seq, env.lane, env.gateway, batch.nbytes) == (
            batch.seq,
            batch.lane,
            GW,
            len(batch.payload),
        )
        assert batch.items == len(env.readings) + len(env.alerts) + (env.status is not None)
        out.append(env)
    return out


def row_bytes(rs: list[Reading]) -> int:
    """Return the logical bytes the buffer charges for these readings."""
    return sum(len(encode_reading(r)) + ROW_OVERHEAD for r in rs)


def test_lane_priority_and_one_lane_per_batch(tmp_path: Path) -> None:
    """Alerts seal before status before telemetry, whatever the put order, one lane per envelope."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(5))
        buf.put_status({"ts_ms": 5, "state": "online"})
        buf.put_alerts(alerts(2))
        envs = envelopes(buf.next_batches(10, max_items=100, max_bytes=1 << 20, now_ms=99))
    assert [e.lane for e in envs] == [Lane.ALERTS, Lane.STATUS, Lane.TELEMETRY]
    assert [e.seq for e in envs] == [1, 2, 3]
    assert envs[0].alerts == tuple(alerts(2))
    assert envs[1].status == {"ts_ms": 5, "state": "online"}
    assert envs[2].readings == tuple(readings(5))
    assert {e.sent_ms for e in envs} == {99}


def test_sealed_batches_come_first_and_max_batches_holds(tmp_path: Path) -> None:
    """Unacked sealed batches are returned again, oldest first, before anything new, alerts included."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(30))
        first = buf.next_batches(2, max_items=10, max_bytes=1 << 20, now_ms=1)
        assert [b.seq for b in first] == [1, 2]
        buf.put_alerts(alerts(1))
        again = buf.next_batches(4, max_items=10, max_bytes=1 << 20, now_ms=2)
    assert again[:2] == first
    assert [(b.seq, b.lane) for b in again[2:]] == [(3, Lane.ALERTS), (4, Lane.TELEMETRY)]


def test_max_items_and_max_bytes_bound_each_envelope(tmp_path: Path) -> None:
    """Each envelope carries at most max_items rows and max_bytes bytes, and all rows arrive in order."""
    rs = readings(2500)
    with open_buffer(tmp_path) as buf:
        buf.put_readings(rs)
        by_items = buf.next_batches(10, max_items=1000, max_bytes=1 << 20, now_ms=0)
        assert [b.items for b in by_items] == [1000, 1000, 500]
        for b in by_items:
            buf.ack(b.seq)
        buf.put_readings(rs)
        by_bytes = drain(buf, max_items=10_000, ack=True)
    limit = 1 << 20
    assert all(b.nbytes <= limit for b in by_bytes)
    assert [r for e in envelopes(by_items) for r in e.readings] == rs
    assert [r for e in envelopes(by_bytes) for r in e.readings] == rs


def test_small_max_bytes_still_makes_progress(tmp_path: Path) -> None:
    """A byte limit below one row still seals one row per envelope instead of stalling."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(3))
        batches = buf.next_batches(5, max_items=100, max_bytes=10, now_ms=0)
    assert [b.items for b in batches] == [1, 1, 1]


def test_seq_is_monotonic_and_persists_across_reopen(tmp_path: Path) -> None:
    """Seqs keep increasing across acks and reopen; none is ever reused."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(10))
        seqs = [b.seq for b in drain(buf, max_items=3)]
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(4))
        seqs += [b.seq for b in drain(buf, max_items=3)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) == 6


def test_resend_after_reopen_is_byte_identical(tmp_path: Path) -> None:
    """Sealed, unacked batches come back after reopen with the same seq and the same bytes."""
    with open_buffer(tmp_path) as buf:
        buf.put_alerts(alerts(3))
        buf.put_readings(readings(50))
        sent = buf.next_batches(3, max_items=20, max_bytes=1 << 20, now_ms=1000)
        buf.ack(sent[1].seq)
    with open_buffer(tmp_path) as buf:
        resent = buf.next_batches(2, max_items=20, max_bytes=1 << 20, now_ms=5000)
        for batch in resent:
            buf.ack(batch.seq)
        rest = drain(buf, max_items=100)
    assert resent == [sent[0], sent[2]]
    got = [r for e in envelopes([*sent[1:], *rest]) for r in e.readings]
    assert got == readings(50)


def test_ack_deletes_and_is_idempotent(tmp_path: Path) -> None:
    """ack removes a batch for good (also across reopen); unknown or repeated seqs are ignored."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(10))
        (batch,) = buf.next_batches(1, max_items=100, max_bytes=1 << 20, now_ms=0)
        assert buf.stats().sealed_unacked == 1
        buf.ack(batch.seq)
        buf.ack(batch.seq)
        buf.ack(12345)
        assert buf.stats().depth_items == 0
        assert buf.stats().depth_bytes == 0
        assert buf.next_batches(5, max_items=100, max_bytes=1 << 20, now_ms=0) == []
    with open_buffer(tmp_path) as buf:
        assert buf.next_batches(5, max_items=100, max_bytes=1 << 20, now_ms=0) == []


def test_byte_bound_drops_oldest_telemetry_keeps_alerts_and_reports(tmp_path: Path) -> None:
    """Over the bound, the oldest telemetry goes first, alerts stay, and the count rides the next envelope."""
    al = alerts(3)
    alert_bytes = sum(len(encode_alert(a)) + ROW_OVERHEAD for a in al)
    max_bytes = alert_bytes + 40 * (len(encode_reading(readings(1)[0])) + ROW_OVERHEAD)
    puts = [readings(25, start) for start in range(0, 200, 25)]
    everything = [r for chunk in puts for r in chunk]
    # The retained telemetry must be the longest suffix of everything that fits beside the alerts.
    kept = 0
    while kept < len(everything) and row_bytes(everything[-(kept + 1) :]) <= max_bytes - alert_bytes:
        kept += 1
    with open_buffer(tmp_path, max_bytes=max_bytes) as buf:
        buf.put_alerts(al)
        for chunk in puts:
            buf.put_readings(chunk)
            assert buf.stats().depth_bytes <= max_bytes
        stats = buf.stats()
        envs = envelopes(drain(buf))
    dropped = len(everything) - kept
    assert dropped > 0
    assert stats.dropped == {"alerts": 0, "status": 0, "telemetry": dropped}
    assert stats.by_lane == {"alerts": 3, "status": 0, "telemetry": kept}
    assert envs[0].lane == Lane.ALERTS
    assert envs[0].alerts == tuple(al)
    assert envs[0].dropped == {"telemetry": dropped}
    assert all(e.dropped == {} for e in envs[1:])
    assert [r for e in envs for r in e.readings] == everything[-kept:]


def test_telemetry_never_evicts_alerts(tmp_path: Path) -> None:
    """When only alerts fill the buffer, new telemetry is dropped (counted) rather than any alert."""
    al = alerts(10)
    max_bytes = sum(len(encode_alert(a)) + ROW_OVERHEAD for a in al) + 10
    with open_buffer(tmp_path, max_bytes=max_bytes) as buf:
        buf.put_alerts(al)
        buf.put_readings(readings(5))
        stats = buf.stats()
        envs = envelopes(drain(buf))
    assert stats.dropped["telemetry"] == 5
    assert stats.by_lane["alerts"] == 10
    assert [a for e in envs for a in e.alerts] == al
    assert envs[0].dropped == {"telemetry": 5}


def test_alerts_dropped_last_oldest_first(tmp_path: Path) -> None:
    """With nothing else left, the oldest alerts give way to newer ones, and are counted."""
    size = len(encode_alert(alerts(1)[0])) + ROW_OVERHEAD
    with open_buffer(tmp_path, max_bytes=4 * size) as buf:
        buf.put_alerts(alerts(3))
        buf.put_alerts(alerts(3, start=3))
        stats = buf.stats()
        envs = envelopes(drain(buf))
    assert stats.dropped["alerts"] == 2
    assert [a for e in envs for a in e.alerts] == alerts(4, start=2)


def test_sealed_batches_dropped_only_when_needed(tmp_path: Path) -> None:
    """Telemetry never evicts a sealed batch in flight; alerts do, once all unsealed telemetry is gone."""
    one = len(encode_reading(readings(1)[0])) + ROW_OVERHEAD
    base = len(encode_alert(AlertEvent(GW, "d", "r-0", AlertState.FIRING, 3, 0))) + ROW_OVERHEAD
    # Four alerts of about nine readings each outweigh all unsealed telemetry but fit the buffer.
    big = [AlertEvent(GW, "d" * (9 * one - base + 1), f"r-{i}", AlertState.FIRING, 3, i) for i in range(4)]
    with open_buffer(tmp_path, max_bytes=40 * one) as buf:
        buf.put_readings(readings(10))
        (sealed,) = buf.next_batches(1, max_items=10, max_bytes=1 << 20, now_ms=0)
        buf.put_readings(readings(60, start=10))
        assert buf.next_batches(1, max_items=10, max_bytes=1 << 20, now_ms=0) == [sealed]
        assert 0 < buf.stats().dropped["telemetry"] < 60
        buf.put_alerts(big)
        stats = buf.stats()
        buf.ack(sealed.seq)
        envs = envelopes(drain(buf))
    assert stats.sealed_unacked == 0
    assert stats.by_lane == {"alerts": 4, "status": 0, "telemetry": 0}
    assert stats.dropped == {"alerts": 0, "status": 0, "telemetry": 70}
    assert envs[0].seq == sealed.seq + 1
    assert envs[0].alerts == tuple(big)
    assert envs[0].dropped == {"telemetry": 70}


def test_drop_counts_persist_and_ride_an_empty_envelope(tmp_path: Path) -> None:
    """Pending drop counts survive reopen and go upstream even when no row is left to carry them."""
    with open_buffer(tmp_path, max_bytes=20) as buf:
        buf.put_readings(readings(2))
        assert buf.stats().dropped_pending == {"alerts": 0, "status": 0, "telemetry": 2}
    with open_buffer(tmp_path, max_bytes=20) as buf:
        envs = envelopes(drain(buf))
        assert buf.stats().dropped == {"alerts": 0, "status": 0, "telemetry": 2}
        assert buf.stats().dropped_pending == {"alerts": 0, "status": 0, "telemetry": 0}
    assert [(e.lane, e.readings, e.dropped) for e in envs] == [(Lane.TELEMETRY, (), {"telemetry": 2})]


def test_accounting_recovers_on_reopen(tmp_path: Path) -> None:
    """Depth, bytes, lanes, drops and unacked batches read the same after reopen as before close."""
    with open_buffer(tmp_path, max_bytes=5000) as buf:
        buf.put_alerts(alerts(2))
        buf.put_status({"ts_ms": 7})
        buf.put_readings(readings(100))
        buf.next_batches(2, max_items=5, max_bytes=1 << 20, now_ms=0)
        before = buf.stats()
    with open_buffer(tmp_path, max_bytes=5000) as buf:
        after = buf.stats()
    assert replace(after, ingress_bytes=before.ingress_bytes) == before
    assert before.sealed_unacked == 2
    assert before.depth_bytes <= 5000


def test_status_keeps_only_the_latest(tmp_path: Path) -> None:
    """Superseded heartbeats are coalesced to the latest few, not counted as dropped."""
    with open_buffer(tmp_path) as buf:
        for i in range(STATUS_KEEP + 4):
            buf.put_status({"ts_ms": i})
        stats = buf.stats()
        envs = envelopes(drain(buf))
    assert stats.by_lane["status"] == STATUS_KEEP
    assert stats.dropped["status"] == 0
    assert [e.status for e in envs] == [{"ts_ms": i} for i in range(4, STATUS_KEEP + 4)]


def test_autonomy_hours(tmp_path: Path) -> None:
    """Autonomy is free bytes over the ingress rate, infinite with no ingress, zero when full."""
    with open_buffer(tmp_path, max_bytes=100_000) as buf:
        assert buf.autonomy_hours(0.0) == math.inf
        assert buf.autonomy_hours(10.0) == pytest.approx(100_000 / 10 / 3600)
        buf.put_readings(readings(50))
        depth = buf.stats().depth_bytes
        assert depth == row_bytes(readings(50))
        assert buf.stats().ingress_bytes == depth
        assert buf.autonomy_hours(2.5) == pytest.approx((100_000 - depth) / 2.5 / 3600)
    with open_buffer(tmp_path / "full", max_bytes=100) as buf:
        buf.put_readings(readings(50))
        assert buf.autonomy_hours(1.0) < 100 / 3600


def test_oldest_and_pending_age(tmp_path: Path) -> None:
    """The oldest event time covers sealed and unsealed items; age is measured from it."""
    with open_buffer(tmp_path) as buf:
        assert buf.pending_age_ms(10) is None
        buf.put_readings(readings(5, start=100))
        buf.next_batches(1, max_items=2, max_bytes=1 << 20, now_ms=0)
        assert buf.stats().oldest_ts_ms == 1_700_000_000_100
        assert buf.pending_age_ms(1_700_000_001_100) == 1000


def test_second_owner_is_refused(tmp_path: Path) -> None:
    """A second open of a buffer file in use fails with BufferLockedError; it opens once released."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(1))
        with pytest.raises(BufferLockedError):
            open_buffer(tmp_path)
    with open_buffer(tmp_path) as buf:
        assert buf.stats().depth_items == 1


def test_wrong_gateway_is_refused(tmp_path: Path) -> None:
    """A buffer file keeps one gateway's seq space; opening it as another gateway fails."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(1))
    with pytest.raises(DurableBufferError):
        DurableBuffer(tmp_path / "buffer.db", gateway="gw-other", max_bytes=BIG)


def test_bad_items_are_rejected_counted_and_the_rest_kept(tmp_path: Path) -> None:
    """Items the wire would refuse are skipped and counted by lane; good items of the same put are stored."""
    good = readings(4)
    bad = [
        Reading("x" * 70_000, "pm10", 1.0, "ug/m3", 1),
        Reading("d", "pm10", float("nan"), "ug/m3", 1),
        Reading("d", "pm10", 1.0, "furlong", 1),
    ]
    foreign = AlertEvent("gw-other", "d", "r", AlertState.FIRING, 1, 1)
    with open_buffer(tmp_path) as buf:
        buf.put_readings([good[0], *bad, *good[1:]])
        buf.put_alerts([foreign, *alerts(1)])
        buf.put_status({"ts_ms": 1, "bad": {1, 2}})
        stats = buf.stats()
        envs = envelopes(drain(buf))
    with open_buffer(tmp_path) as buf:
        assert buf.stats().rejected == stats.rejected
    assert stats.rejected == {"alerts": 1, "status": 1, "telemetry": 3}
    assert stats.by_lane == {"alerts": 1, "status": 0, "telemetry": 4}
    assert [r for e in envs for r in e.readings] == good
    assert [a for e in envs for a in e.alerts] == alerts(1)


def test_ack_many_forgets_exactly_the_given_batches(tmp_path: Path) -> None:
    """ack_many deletes the listed sealed batches in one go and ignores unknown or repeated seqs."""
    with DurableBuffer(tmp_path / "b.db", gateway="gw-1", max_bytes=10_000_000) as buffer:
        buffer.put_readings([Reading("d", "pressure", 0.3 + i / 100, "MPa", 1_000 + i) for i in range(6)])
        batches = buffer.next_batches(3, max_items=2, max_bytes=1_000_000, now_ms=5_000)
        assert len(batches) == 3
        buffer.ack_many([batches[0].seq, batches[2].seq, batches[2].seq, 999])
        assert buffer.stats().sealed_unacked == 1
        [again] = buffer.next_batches(3, max_items=2, max_bytes=1_000_000, now_ms=6_000)
        assert (again.seq, again.payload) == (batches[1].seq, batches[1].payload)
