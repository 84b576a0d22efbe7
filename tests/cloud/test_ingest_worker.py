"""IngestWorker against a real mosquitto: exactly-once apply, rejections, liveness and `$share` load split."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import aiomqtt
import orjson
import pytest

from cloud.fleet import Liveness
from cloud.ingest import (
    AlertSink,
    IngestSettings,
    IngestWorker,
    LivenessSink,
    MemoryLedger,
    RecordingAlertSink,
    RecordingLiveness,
    StaticDirectory,
)
from cloud.ingest.ledger import Ledger
from cloud.store import SeriesStore
from cloud.store.memory import MemorySeriesStore
from cloud.store.sqlite import SqliteSeriesStore
from gateway import topics
from gateway.aio import cancel_and_wait
from gateway.alerts import AlertEvent, AlertState
from gateway.contract import Envelope, Lane, encode_envelope
from gateway.readings import Reading
from tests.cloud.ingest_rig import GATEWAYS, T0, readings_of, telemetry
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def alert_envelope(gateway: str, seq: int) -> bytes:
    """Return the wire bytes of an alerts envelope with one firing alert."""
    alert = AlertEvent(gateway, f"{gateway}-d0", "pm25_high", AlertState.FIRING, 2, T0 + seq, "pm25", 80.0, 75.0)
    return encode_envelope(Envelope(1, gateway, seq, Lane.ALERTS, T0 + seq, alerts=(alert,)))


def heartbeat(gateway: str) -> bytes:
    """Return a live heartbeat (status lane, seq 0)."""
    return encode_envelope(Envelope(1, gateway, 0, Lane.STATUS, T0, status={"state": "online"}))


def settings(broker: Mosquitto, client_id: str = "ingest-t1", **over: object) -> IngestSettings:
    """Return fast-reacting ingest settings for `broker`."""
    base: dict[str, object] = {
        "port": broker.port,
        "client_id": client_id,
        "batch_max_delay_s": 0.02,
        "batch_max_bytes": 8000,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
    }
    return IngestSettings.model_validate(base | over)


class Rig:
    """One worker with its store, sinks and ledger, running as a task."""

    def __init__(
        self,
        broker: Mosquitto,
        client_id: str = "ingest-t1",
        *,
        store: SeriesStore | None = None,
        ledger: Ledger | None = None,
        liveness: LivenessSink | None = None,
        gateways: Iterable[str] = GATEWAYS,
        alerts: AlertSink | None = None,
        **over: object,
    ) -> None:
        self.store = store if store is not None else MemorySeriesStore()
        self.alerts = RecordingAlertSink()
        self.liveness = liveness if liveness is not None else RecordingLiveness()
        self.ledger = ledger if ledger is not None else MemoryLedger()
        self.worker = IngestWorker(
            settings(broker, client_id, **over),
            self.store,
            StaticDirectory(gateways),
            alerts if alerts is not None else self.alerts,
            self.liveness,
            self.ledger,
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the worker and return once it is subscribed."""
        self.task = asyncio.create_task(self.worker.run())
        async with asyncio.timeout(10):
            await self.worker.subscribed.wait()

    async def stop(self) -> None:
        """Cancel the worker and wait for it."""
        if self.task is not None:
            await cancel_and_wait(self.task)


@contextlib.asynccontextmanager
async def running(rig: Rig) -> AsyncIterator[Rig]:
    """Run `rig` for the block."""
    await rig.start()
    try:
        yield rig
    finally:
        await rig.stop()


async def publish(broker: Mosquitto, messages: Sequence[tuple[str, bytes]], *, retain: bool = False) -> None:
    """Publish raw payloads QoS 1 from one client, in order."""
    async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5, timeout=5) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


async def settled(rig: Rig, messages: int, within_s: float = 20.0) -> None:
    """Wait until the worker has received `messages` messages and applied and acked them all."""
    c = rig.worker.counters
    await eventually(lambda: c.messages >= messages and rig.worker.idle, within_s, f"{messages} messages applied")


def stored(store: SeriesStore, gateway: str, seqs: Iterable[int]) -> list[Reading]:
    """Return what the store holds for the readings of the given envelopes."""
    out: list[Reading] = []
    for device in {r.device for seq in seqs for r in readings_of(gateway, seq)}:
        out += store.readings(device, "pm25", 0, 2**62)
    return sorted(out)


@pytest.mark.parametrize("decoders", [0, 1], ids=["writer-decodes", "decoder-process"])
async def test_replayed_reordered_and_duplicated_envelopes_change_nothing(
    mosquitto_broker: Mosquitto, tmp_path: Path, decoders: int
) -> None:
    """Sending every envelope once, then a shuffled replay with duplicates, stores and hands each exactly once."""
    store = SqliteSeriesStore(tmp_path / "series.db")
    rig = Rig(mosquitto_broker, store=store, decode_processes=decoders)
    # Seqs 1..30 with a gap (13 dropped at the edge), alerts interleaved on their own topic.
    seqs = [s for s in range(1, 31) if s != 13]
    original = [
        (topics.alerts(gw), alert_envelope(gw, s)) if s % 5 == 0 else (topics.telemetry(gw), telemetry(gw, s))
        for gw in GATEWAYS
        for s in seqs
    ]
    replay = original + original[::3]
    random.Random(7).shuffle(replay)
    async with running(rig):
        # Out of lane order first: every alerts batch before the telemetry batches it interleaves with.
        first = sorted(original, key=lambda m: not m[0].endswith("/alerts"))
        await publish(mosquitto_broker, first)
        await settled(rig, len(first))
        snapshot = {gw: stored(store, gw, seqs) for gw in GATEWAYS}
        handed = list(rig.alerts.handed)
        await publish(mosquitto_broker, replay)
        await settled(rig, len(first) + len(replay))
    c = rig.worker.counters
    expected_readings = sorted(r for gw in GATEWAYS for s in seqs if s % 5 for r in readings_of(gw, s))
    assert sorted(r for gw in GATEWAYS for r in snapshot[gw]) == expected_readings
    assert {gw: stored(store, gw, seqs) for gw in GATEWAYS} == snapshot
    assert rig.alerts.handed == handed
    assert sorted((gw, a.ts_ms) for gw, a in handed) == sorted(
        (gw, T0 + s) for gw in GATEWAYS for s in seqs if s % 5 == 0
    )
    assert c.envelopes == len(original)
    assert c.duplicates == len(replay)
    assert c.readings == c.readings_new == len(expected_readings)
    assert sum(c.rejected.values()) == 0
    store.close()


async def test_bad_messages_are_counted_by_reason_and_good_ones_still_apply(mosquitto_broker: Mosquitto) -> None:
    """Malformed, oversize, old-schema, invalid, unknown-gateway, spoofed and wrong-lane messages are only counted."""
    rig = Rig(mosquitto_broker, max_envelope_bytes=4096)
    good = telemetry("gw-a", 1)
    bad_version = orjson.dumps({**orjson.loads(good), "v": 2})
    bad_unit = good.replace(b'"ug/m3"', b'"furlongs"', 1)
    bad = [
        (topics.telemetry("gw-a"), b"{not json"),
        (topics.telemetry("gw-a"), b"[1, 2]"),
        (topics.telemetry("gw-a"), telemetry("gw-a", 2, n=200)),  # > 4096 bytes
        (topics.telemetry("gw-a"), bad_version),
        (topics.telemetry("gw-a"), bad_unit),
        (topics.telemetry("gw-a"), telemetry("gw-a", 0)),  # seq 0 is the heartbeat's
        (topics.telemetry("gw-x"), telemetry("gw-x", 1)),  # not in the directory
        (topics.telemetry("gw-b"), telemetry("gw-a", 3)),  # gw-a's envelope under gw-b's topic
        (topics.alerts("gw-a"), telemetry("gw-a", 4)),  # a telemetry envelope on the alerts topic
        (topics.config_ack("gw-a"), b"ack"),  # outside our subscriptions: never arrives
    ]
    async with running(rig):
        await publish(mosquitto_broker, [*bad, (topics.telemetry("gw-a"), good)])
        await settled(rig, len(bad))
    c = rig.worker.counters
    assert dict(c.rejected) == {
        "malformed": 2,
        "oversize": 1,
        "schema_version": 1,
        "invalid": 2,
        "unknown_gateway": 1,
        "spoofed": 1,
        "lane": 1,
    }
    assert c.messages == len(bad)  # the config/ack message is not subscribed to
    assert c.envelopes == 1
    assert stored(rig.store, "gw-a", [1]) == sorted(readings_of("gw-a", 1))
    assert stored(rig.store, "gw-b", [3]) == []


async def test_rejections_are_logged_once_per_cause(
    mosquitto_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty malformed messages and three spoofed ones give two warnings, not twenty-three."""
    rig = Rig(mosquitto_broker)
    bad = [(topics.telemetry("gw-a"), b"garbage")] * 20 + [(topics.telemetry("gw-b"), telemetry("gw-a", 1))] * 3
    with caplog.at_level("WARNING", logger="cloud.ingest.worker"):
        async with running(rig):
            await publish(mosquitto_broker, bad)
            await settled(rig, len(bad))
    warnings = [r.getMessage() for r in caplog.records if r.name == "cloud.ingest.worker"]
    assert len(warnings) == 2
    assert any("malformed" in w for w in warnings)
    assert any("spoofed" in w for w in warnings)


async def test_heartbeats_are_never_deduplicated_and_the_will_marks_offline(mosquitto_broker: Mosquitto) -> None:
    """Three seq-0 heartbeats reach liveness three times; the `offline` Will reaches it as a will, not an error."""
    liveness = Liveness(heartbeat_window_ms=60_000)
    liveness.bind("gw-a-d0", "gw-a")
    rig = Rig(mosquitto_broker, liveness=liveness)
    status = topics.status("gw-a")
    async with running(rig):
        await publish(
            mosquitto_broker, [(status, heartbeat("gw-a"))] * 3 + [(topics.telemetry("gw-a"), telemetry("gw-a", 1))]
        )
        await settled(rig, 4)
        now = rig.worker.clock()
        online = liveness.tick(now)
        await publish(mosquitto_broker, [(status, topics.OFFLINE)])
        await settled(rig, 5)
        offline = liveness.tick(now + 1)
    c = rig.worker.counters
    assert (c.heartbeats, c.wills, c.duplicates, sum(c.rejected.values())) == (3, 1, 0, 0)
    assert [e.kind.value for e in online] == ["gateway_online"]
    assert [(e.kind.value, e.reason, e.devices) for e in offline] == [("gateway_offline", "will", ("gw-a-d0",))]
    assert liveness.device_last_seen("gw-a-d0") == max(r.ts_ms for r in readings_of("gw-a", 1) if r.device == "gw-a-d0")


async def test_two_workers_in_one_group_split_the_load_and_apply_each_reading_once(
    mosquitto_broker: Mosquitto, tmp_path: Path
) -> None:
    """Two `$share` workers each get a share; the union of what they stored is the input, with no overlap."""
    ledger = MemoryLedger()  # shared, as the database ledger is shared between real workers
    one = Rig(mosquitto_broker, "ingest-w1", ledger=ledger)
    two = Rig(mosquitto_broker, "ingest-w2", ledger=ledger)
    messages = [(topics.telemetry(gw), telemetry(gw, s)) for s in range(1, 101) for gw in GATEWAYS]
    async with running(one), running(two):
        await publish(mosquitto_broker, messages)
        await eventually(
            lambda: (
                one.worker.counters.messages + two.worker.counters.messages == len(messages)
                and one.worker.idle
                and two.worker.idle
            ),
            20,
            "all messages applied",
        )
    shares = [sorted(r for gw in GATEWAYS for r in stored(rig.store, gw, range(1, 101))) for rig in (one, two)]
    expected = sorted(r for gw in GATEWAYS for s in range(1, 101) for r in readings_of(gw, s))
    assert all(share for share in shares), "each worker gets a share"
    assert sorted(shares[0] + shares[1]) == expected
    assert not set(shares[0]) & set(shares[1])
    assert one.worker.counters.readings + two.worker.counters.readings == len(expected)
    assert one.worker.counters.duplicates + two.worker.counters.duplicates == 0


async def test_a_stopped_worker_resumes_its_session_and_loses_nothing(
    mosquitto_broker: Mosquitto, tmp_path: Path
) -> None:
    """Messages published while the worker is down wait in its persistent session and are applied once on return."""
    store = SqliteSeriesStore(tmp_path / "series.db")
    ledger = MemoryLedger()
    first = Rig(mosquitto_broker, "ingest-p", store=store, ledger=ledger)
    async with running(first):
        await publish(mosquitto_broker, [(topics.telemetry("gw-a"), telemetry("gw-a", s)) for s in range(1, 11)])
        await settled(first, 10)
    await publish(mosquitto_broker, [(topics.telemetry("gw-a"), telemetry("gw-a", s)) for s in range(5, 21)])
    second = Rig(mosquitto_broker, "ingest-p", store=store, ledger=ledger)
    async with running(second):
        await settled(second, 16)
    assert stored(store, "gw-a", range(1, 21)) == sorted(r for s in range(1, 21) for r in readings_of("gw-a", s))
    assert (second.worker.counters.envelopes, second.worker.counters.duplicates) == (10, 6)
    store.close()


class FlakyStore(MemorySeriesStore):
    """A store whose first write fails after storing, like a crash between the store and the ledger commit."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def write(self, readings: Sequence[Reading]) -> int:
        new = super().write(readings)
        if self.failures:
            self.failures -= 1
            raise OSError("disk went away")
        return new


async def test_a_failed_batch_is_redelivered_and_applied_once(mosquitto_broker: Mosquitto) -> None:
    """A write error drops the session without acks; the broker redelivers and every reading lands once."""
    store = FlakyStore()
    rig = Rig(mosquitto_broker, store=store)
    messages = [(topics.telemetry("gw-a"), telemetry("gw-a", s)) for s in range(1, 21)]
    async with running(rig):
        await publish(mosquitto_broker, messages)
        await settled(rig, len(messages))
    c = rig.worker.counters
    assert (c.apply_errors, c.connects) == (1, 2)
    assert stored(store, "gw-a", range(1, 21)) == sorted(r for s in range(1, 21) for r in readings_of("gw-a", s))
    assert c.envelopes == 20
