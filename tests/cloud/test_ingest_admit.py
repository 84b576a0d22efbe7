"""Admission of one message (sans-I/O) and the apply step with its crash window, without a broker."""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from cloud.ingest import CountingAlertSink, IngestCounters, IngestSettings, MemoryLedger, RecordingAlertSink
from cloud.ingest.admit import Batch, Heartbeat, Offline, Rejected, admit
from cloud.ingest.apply import Message, Outcome, apply_batch, newest_per_device, process_batch
from cloud.ingest.counters import REJECT_REASONS
from cloud.ingest.ports import StaticDirectory
from cloud.ingest.worker import without_gc
from cloud.store.memory import MemorySeriesStore
from cloud.store.sqlite import SqliteSeriesStore
from gateway import topics
from gateway.alerts import AlertEvent, AlertState
from gateway.backoff import Backoff
from gateway.contract import Envelope, Lane, encode_envelope
from gateway.readings import Reading

T0 = 1_700_000_000_000
DIRECTORY = StaticDirectory({"gw-a", "gw-b"})


def env(seq: int, gateway: str = "gw-a", lane: Lane = Lane.TELEMETRY, n: int = 3) -> Envelope:
    """Return an envelope of `n` readings (telemetry) or one alert (alerts lane)."""
    if lane is Lane.ALERTS:
        alert = AlertEvent(gateway, "d1", "r", AlertState.FIRING, 1, T0 + seq)
        return Envelope(1, gateway, seq, lane, T0, alerts=(alert,))
    rows = tuple(Reading(f"d{i}", "pm25", float(seq), "ug/m3", T0 + seq * 10 + i) for i in range(n))
    return Envelope(1, gateway, seq, lane, T0, readings=rows)


def verdict(topic: str, payload: bytes) -> object:
    """Admit with the test directory and the contract's size limit."""
    return admit(topic, payload, DIRECTORY, max_bytes=1024 * 1024)


def test_a_good_envelope_is_a_batch_and_a_heartbeat_is_liveness_only() -> None:
    """Telemetry with a seq is applied; a status envelope with seq 0 is a heartbeat; `offline` is the Will."""
    assert verdict(topics.telemetry("gw-a"), encode_envelope(env(1))) == Batch(env(1))
    beat = Envelope(1, "gw-a", 0, Lane.STATUS, T0, status={"state": "online"})
    assert verdict(topics.status("gw-a"), encode_envelope(beat)) == Heartbeat(beat)
    assert verdict(topics.status("gw-a"), topics.OFFLINE) == Offline("gw-a")


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("gw/a/b/c", b"{}", "topic"),
        ("cloud/x", b"{}", "topic"),
        (topics.config_ack("gw-a"), b"ack", "topic"),
        (topics.telemetry("gw-z"), encode_envelope(env(1, "gw-z")), "unknown_gateway"),
        (topics.status("gw-z"), topics.OFFLINE, "unknown_gateway"),
        (topics.telemetry("gw-a"), b"offline", "malformed"),
        (topics.telemetry("gw-a"), b"", "malformed"),
        (topics.telemetry("gw-a"), b" " * (1024 * 1024 + 1), "oversize"),
        (topics.telemetry("gw-a"), b'{"v": 9}', "schema_version"),
        (topics.telemetry("gw-a"), encode_envelope(env(1)).replace(b'"seq":1', b'"seq":-1'), "invalid"),
        (topics.telemetry("gw-a"), encode_envelope(env(0)), "invalid"),
        (topics.telemetry("gw-b"), encode_envelope(env(1, "gw-a")), "spoofed"),
        (topics.alerts("gw-a"), encode_envelope(env(1)), "lane"),
    ],
)
def test_bad_messages_are_rejected_with_a_stable_reason(topic: str, payload: bytes, reason: str) -> None:
    """Each kind of bad message maps to its counted reason."""
    got = verdict(topic, payload)
    assert isinstance(got, Rejected)
    assert got.reason == reason
    assert got.reason in REJECT_REASONS


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300), kind=st.sampled_from(["telemetry", "alerts", "status", "config"]))
def test_admission_never_raises_on_garbage(payload: bytes, kind: str) -> None:
    """Arbitrary bytes on any topic give a verdict, never an exception."""
    assert isinstance(verdict(f"gw/gw-a/{kind}", payload), Rejected | Offline | Heartbeat | Batch)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_admission_never_raises_on_mutated_envelopes(data: st.DataObject) -> None:
    """Envelopes with a byte flipped, cut or duplicated give a verdict, never an exception."""
    good = bytearray(encode_envelope(env(3, lane=data.draw(st.sampled_from([Lane.TELEMETRY, Lane.ALERTS])))))
    at = data.draw(st.integers(0, len(good) - 1))
    good[at] = data.draw(st.integers(0, 255))
    cut = bytes(good[: data.draw(st.integers(0, len(good)))])
    for payload in (bytes(good), cut, cut + cut):
        assert isinstance(verdict(topics.telemetry("gw-a"), payload), Rejected | Batch)


class FailingLedger(MemoryLedger):
    """A ledger whose next `record` fails, as a crash between the store write and the ledger commit would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def record(self, applied: Mapping[str, Collection[int]]) -> None:
        if self.fail:
            self.fail = False
            raise OSError("disk full")
        super().record(applied)


def test_a_crash_before_the_ledger_commit_re_applies_idempotently(tmp_path: Path) -> None:
    """After a failed ledger commit the redelivered batch changes no stored reading and hands the same alerts."""
    batch = [env(1), env(2, lane=Lane.ALERTS), env(3), env(1)]
    ledger, alerts = FailingLedger(), RecordingAlertSink()
    with SqliteSeriesStore(tmp_path / "s.db") as store:
        with pytest.raises(OSError, match="disk full"):
            apply_batch(batch, store, alerts, ledger)
        before = [store.readings(f"d{i}", "pm25", 0, 2**62) for i in range(3)]
        handed = list(alerts.handed)
        again = apply_batch(batch, store, alerts, ledger)
        assert [store.readings(f"d{i}", "pm25", 0, 2**62) for i in range(3)] == before
        assert (again.readings, again.readings_new, again.duplicates) == (6, 0, 1)
        assert alerts.handed == handed + handed  # why AlertSink.handle_batch must be idempotent
        third = apply_batch(batch, store, alerts, ledger)
        assert (len(third.envelopes), third.duplicates, third.readings) == (0, 4, 0)


def test_a_batch_hands_its_new_alert_envelopes_in_one_call() -> None:
    """Every new alerts envelope of a batch reaches the sink in arrival order in one call; repeats do not."""
    alerts, ledger = RecordingAlertSink(), MemoryLedger()
    apply_batch([env(1, lane=Lane.ALERTS)], MemorySeriesStore(), alerts, ledger)
    batch = [
        env(2, lane=Lane.ALERTS),
        env(3),
        env(5, "gw-b", Lane.ALERTS),
        env(1, lane=Lane.ALERTS),
        env(4, lane=Lane.ALERTS),
    ]
    apply_batch(batch, MemorySeriesStore(), alerts, ledger)
    assert alerts.calls == 2
    assert [(gw, a.ts_ms - T0) for gw, a in alerts.handed] == [("gw-a", 1), ("gw-a", 2), ("gw-b", 5), ("gw-a", 4)]
    apply_batch([env(6)], MemorySeriesStore(), alerts, ledger)
    assert alerts.calls == 2  # a batch without alerts makes no call


def test_apply_reports_the_newest_event_time_per_device() -> None:
    """Liveness gets each device's newest event time, whatever the order of the readings."""
    rows = [Reading("d1", "q", 1.0, "1", 5), Reading("d2", "q", 1.0, "1", 3), Reading("d1", "q", 1.0, "1", 2)]
    assert newest_per_device(rows) == {"d1": 5, "d2": 3}


@pytest.fixture
def gc_state() -> Iterator[None]:
    """Restore the collector's on/off state whatever a test leaves it in."""
    was_on = gc.isenabled()
    yield
    if was_on:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.parametrize("was_on", [True, False])
def test_a_batch_runs_with_the_collector_paused_and_leaves_it_as_found(gc_state: None, was_on: bool) -> None:
    """The writer's batch sees the cyclic GC off, gets its outcome back, and the GC ends as it began."""
    (gc.enable if was_on else gc.disable)()
    seen: list[bool] = []
    store, ledger = MemorySeriesStore(), MemoryLedger()
    payload = encode_envelope(env(1))

    def work() -> Outcome:
        seen.append(gc.isenabled())
        return process_batch(
            [Message("gw/gw-a/telemetry", payload, False)],
            DIRECTORY,
            store,
            CountingAlertSink(),
            ledger,
            max_bytes=1024 * 1024,
        )

    outcome = without_gc(work)
    assert (seen, outcome.applied.readings_new, gc.isenabled()) == ([False], 3, was_on)


def test_a_failing_batch_still_turns_the_collector_back_on(gc_state: None) -> None:
    """An exception from the batch propagates and the cyclic GC is on again afterwards."""
    gc.enable()

    def work() -> Outcome:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        without_gc(work)
    assert gc.isenabled()


def test_counting_sink_and_counters_expose_prometheus_samples() -> None:
    """The default sink counts by state; the counters list every reject reason and the lag quantiles."""
    sink = CountingAlertSink()
    sink.handle_batch([("gw-a", env(1, lane=Lane.ALERTS).alerts), ("gw-b", env(2, lane=Lane.ALERTS).alerts)])
    assert (sink.envelopes, sink.alerts) == (2, {"firing": 2})
    counters = IngestCounters()
    counters.rejected["spoofed"] += 2
    for lag in range(1, 101):
        counters.lag.observe(lag)
    samples = {(name, tuple(labels.items())): value for name, labels, value in counters.samples()}
    assert samples[("gridwatch_ingest_rejected_total", (("reason", "spoofed"),))] == 2
    assert samples[("gridwatch_ingest_lag_ms", (("quantile", "0.99"),))] == 99
    assert {labels["reason"] for name, labels, _ in counters.samples() if name.endswith("rejected_total")} == set(
        REJECT_REASONS
    )


def test_settings_refuse_unknown_keys_and_hide_the_password() -> None:
    """Settings are strict, validate the share group and never print the password."""
    s = IngestSettings(password=SecretStr("hunter2"), group="ingest")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in s.model_dump_json()
    with pytest.raises(ValidationError):
        IngestSettings.model_validate({"hots": "x"})
    with pytest.raises(ValidationError):
        IngestSettings(group="bad/group")


def test_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() -> None:
    """Delays lie in [ceiling/2, ceiling] with the ceiling doubling up to the cap, and reset starts over."""
    backoff = Backoff(0.5, 4.0)
    delays = [backoff.next() for _ in range(6)]
    for delay, ceiling in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next() <= 0.5
