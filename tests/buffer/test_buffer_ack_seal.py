"""Tests for DurableBuffer.ack_and_seal: one transaction acks PUBACKed batches and seals only new ones."""

from __future__ import annotations

from pathlib import Path

from edge_agent.buffer import Batch, DurableBuffer, FsyncPolicy
from gateway.alerts import AlertEvent, AlertState
from gateway.contract import decode_envelope
from gateway.readings import Reading

GW = "gw-test-1"
T0 = 1_700_000_000_000


def readings(n: int, start: int = 0) -> list[Reading]:
    """Return n readings whose ts carries their index, so order and identity are checkable."""
    return [Reading(f"dev-{i % 5}", "pm10", float(i), "ug/m3", T0 + i) for i in range(start, start + n)]


def open_buffer(path: Path, name: str = "buffer.db") -> DurableBuffer:
    """Open the test gateway's buffer at path."""
    return DurableBuffer(path / name, gateway=GW, max_bytes=1 << 30, fsync=FsyncPolicy.NORMAL)


def stamps(batches: list[Batch]) -> list[list[int]]:
    """Return the reading timestamps of each batch, in order."""
    return [[r.ts_ms for r in decode_envelope(b.payload).readings] for b in batches]


def test_bulk_sealing_matches_next_batches_byte_for_byte(tmp_path: Path) -> None:
    """ack_and_seal seals the same envelopes (seq, bytes) as next_batches would, for any batch size."""
    for max_items in (1, 3, 50):
        with open_buffer(tmp_path, f"a{max_items}.db") as a, open_buffer(tmp_path, f"b{max_items}.db") as b:
            a.put_readings(readings(20))
            b.put_readings(readings(20))
            old = a.next_batches(8, max_items=max_items, max_bytes=1 << 20, now_ms=5)
            new, left = b.ack_and_seal([], 8, max_items=max_items, max_bytes=1 << 20, now_ms=5, force=True)
            assert [(x.seq, x.payload, x.items) for x in new] == [(x.seq, x.payload, x.items) for x in old]
            assert left == 20 - sum(x.items for x in new)


def test_max_bytes_bounds_each_bulk_sealed_envelope(tmp_path: Path) -> None:
    """A byte budget splits rows over envelopes exactly as the one-by-one sealing does."""
    with open_buffer(tmp_path, "a.db") as a, open_buffer(tmp_path, "b.db") as b:
        a.put_readings(readings(40))
        b.put_readings(readings(40))
        old = a.next_batches(40, max_items=1000, max_bytes=1024, now_ms=0)
        new, left = b.ack_and_seal([], 40, max_items=1000, max_bytes=1024, now_ms=0, force=True)
        assert [x.payload for x in new] == [x.payload for x in old]
        assert len(new) > 1
        assert all(len(x.payload) <= 1024 for x in new)
        assert left == 0


def test_acks_and_seals_only_new_batches_never_the_held_ones(tmp_path: Path) -> None:
    """Held (unacked) batches are not returned again; acked ones are gone, also after reopening."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(6))
        first, _ = buf.ack_and_seal([], 3, max_items=1, max_bytes=1 << 20, now_ms=0, force=False)
        assert stamps(first) == [[T0], [T0 + 1], [T0 + 2]]
        buf.put_readings(readings(2, start=6))
        second, left = buf.ack_and_seal(
            [first[0].seq, first[2].seq], 10, max_items=1, max_bytes=1 << 20, now_ms=0, force=False
        )
        assert stamps(second) == [[T0 + i] for i in range(3, 8)]
        assert left == 0
        assert buf.stats().sealed_unacked == 1 + len(second)
    with open_buffer(tmp_path) as buf:
        resent = buf.next_batches(10, max_items=1, max_bytes=1 << 20, now_ms=0)
        assert [x.seq for x in resent] == [first[1].seq] + [x.seq for x in second]


def test_waits_for_a_full_batch_unless_forced(tmp_path: Path) -> None:
    """Less than max_items unsealed is left waiting (count returned) until the caller forces it."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(3))
        none, left = buf.ack_and_seal([], 4, max_items=10, max_bytes=1 << 20, now_ms=0, force=False)
        assert none == []
        assert left == 3
        forced, left = buf.ack_and_seal([], 4, max_items=10, max_bytes=1 << 20, now_ms=0, force=True)
        assert stamps(forced) == [[T0, T0 + 1, T0 + 2]]
        assert left == 0


def test_alerts_still_go_first(tmp_path: Path) -> None:
    """Lane priority holds: alerts seal before the telemetry put before them."""
    with open_buffer(tmp_path) as buf:
        buf.put_readings(readings(2))
        buf.put_alerts([AlertEvent(GW, "dev-1", "gas_high", AlertState.FIRING, 2, T0)])
        batches, _ = buf.ack_and_seal([], 5, max_items=1, max_bytes=1 << 20, now_ms=0, force=False)
        assert [b.lane.value for b in batches] == ["alerts", "telemetry", "telemetry"]
