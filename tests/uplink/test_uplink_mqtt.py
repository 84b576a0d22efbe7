"""The uplink against a real mosquitto: DurableBuffer -> Uplink -> broker -> a subscriber."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import edge_agent
from edge_agent.buffer import DurableBuffer
from edge_agent.uplink import HEARTBEAT_SEQ, Uplink
from gateway import topics
from gateway.alerts import AlertEvent, AlertState
from gateway.contract import Lane, decode_envelope
from gridwatch.broker import BrokerProcess
from tests.support.fixtures_mosquitto import BROKER_USERS
from tests.support.mosquitto import Amqtt, Collector, Mosquitto
from tests.support.waiting import eventually
from tests.uplink.uplink_rig import GW, T0, Health, envelopes, readings, running, settings, values

pytestmark = pytest.mark.integration


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[DurableBuffer]:
    """A real durable buffer for gateway gw-a."""
    with DurableBuffer(tmp_path / "buffer.db", gateway=GW, max_bytes=256 * 1024 * 1024) as buf:
        yield buf


def heartbeats(collector: Collector) -> list[dict[str, Any]]:
    out = []
    for topic, payload, _ in collector.messages:
        if topic == topics.status(GW) and payload != topics.OFFLINE:
            env = decode_envelope(payload)
            if env.seq == HEARTBEAT_SEQ:
                assert env.status is not None
                out.append(env.status)
    return out


@pytest.fixture(params=["mosquitto", "amqtt"])
async def either_broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrokerProcess]:
    """A fresh mosquitto (MQTT 5), or the embedded amqtt broker the demo falls back to (MQTT 3.1.1)."""
    kind = Mosquitto if request.param == "mosquitto" else Amqtt
    async with kind(tmp_path / request.param) as broker:
        yield broker


async def test_all_batches_arrive_and_acked_batches_leave_the_buffer(
    either_broker: BrokerProcess, buffer: DurableBuffer
) -> None:
    """5000 readings in 500-reading envelopes all arrive once and the buffer ends empty, on either broker."""
    uplink = Uplink(settings(either_broker, batch={"max_items": 500}), buffer, GW, Health())
    async with Collector(either_broker) as sub, running(uplink):
        for start in range(0, 5000, 250):
            buffer.put_readings(readings(start, 250))
            uplink.notify()
        await sub.wait_until(lambda: len(values(sub)) >= 5000)
        await sub.wait_until(lambda: buffer.stats().depth_items == 0)
    assert values(sub) == [float(i) for i in range(5000)]
    assert all(len(env.readings) <= 500 for env in envelopes(sub).values())
    assert uplink.counters.acked_items == 5000
    assert uplink.counters.publish_errors == 0
    assert buffer.stats().sealed_unacked == 0


async def test_a_trickle_goes_out_after_max_age(mosquitto_broker: Mosquitto, buffer: DurableBuffer) -> None:
    """Three readings, far below max_items, are sealed into one envelope once they are max_age old."""
    uplink = Uplink(settings(mosquitto_broker, batch={"max_items": 1000, "max_age_s": 0.2}), buffer, GW, Health())
    async with Collector(mosquitto_broker) as sub, running(uplink):
        buffer.put_readings(readings(0, 3))
        uplink.notify()
        await sub.wait_until(lambda: len(values(sub)) == 3)
    assert [len(env.readings) for env in envelopes(sub).values()] == [3]


async def test_lanes_go_to_their_topics_alerts_first(mosquitto_broker: Mosquitto, buffer: DurableBuffer) -> None:
    """Alerts go out before earlier-buffered telemetry, each lane on its own topic, status not retained."""
    buffer.put_readings(readings(0, 2000))
    buffer.put_status({"event": "sensor_replaced", "device": "dev-1"})
    alert = AlertEvent(GW, "dev-1", "pm25-high", AlertState.FIRING, 2, T0, "pm25", 180.0, 150.0)
    buffer.put_alerts([alert])
    uplink = Uplink(settings(mosquitto_broker, batch={"max_items": 500}), buffer, GW, Health())
    async with Collector(mosquitto_broker) as sub, running(uplink):
        await sub.wait_until(lambda: len(values(sub)) == 2000 and len(envelopes(sub)) == 6)
    data = [
        (t, retain)
        for t, payload, retain in sub.messages
        if payload != topics.OFFLINE and decode_envelope(payload).seq != HEARTBEAT_SEQ
    ]
    assert data[0] == (topics.alerts(GW), False)
    assert data[1] == (topics.status(GW), False)
    assert {t for t, _ in data[2:]} == {topics.telemetry(GW)}
    by_lane = {env.lane: env for env in envelopes(sub).values()}
    assert by_lane[Lane.ALERTS].alerts == (alert,)
    assert by_lane[Lane.STATUS].status == {"event": "sensor_replaced", "device": "dev-1"}


async def test_broker_crash_loses_nothing_and_dedup_gives_exactly_once(
    mosquitto_broker: Mosquitto, buffer: DurableBuffer, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL of the broker while data keeps coming: after restart every reading arrives, once per seq."""
    caplog.set_level(logging.INFO, logger="edge_agent.uplink")
    uplink = Uplink(settings(mosquitto_broker, batch={"max_items": 200}), buffer, GW, Health())
    async with Collector(mosquitto_broker) as sub, running(uplink):
        await sub.wait_until(lambda: uplink.connected)
        # Save the collector's persistent session to disk, as a long-running ingest's would be.
        await mosquitto_broker.restart(signal.SIGTERM)
        await sub.wait_until(lambda: sub.connects >= 2 and uplink.connected)
        buffer.put_readings(readings(0, 1000))
        uplink.notify()
        await sub.wait_until(lambda: len(values(sub)) >= 1000)
        await mosquitto_broker.stop(signal.SIGKILL)
        for start in range(1000, 3000, 100):
            buffer.put_readings(readings(start, 100))
            uplink.notify()
        await sub.wait_until(lambda: not uplink.connected)
        await mosquitto_broker.start()
        await sub.wait_until(lambda: len(values(sub)) >= 3000, within_s=30)
        await sub.wait_until(lambda: buffer.stats().depth_items == 0)
    assert values(sub) == [float(i) for i in range(3000)]
    assert uplink.counters.reconnects == 2
    lost = [r for r in caplog.records if r.levelno == logging.WARNING and "lost" in r.message]
    back = [r for r in caplog.records if "restored" in r.message]
    assert len(lost) == len(back) == uplink.counters.reconnects


async def test_status_is_retained_online_with_health_and_heartbeats_repeat(
    mosquitto_broker: Mosquitto, buffer: DurableBuffer
) -> None:
    """On connect a retained online STATUS envelope carries buffer, autonomy, drops, counters and health."""
    buffer.put_readings(readings(0, 10))
    uplink = Uplink(settings(mosquitto_broker, heartbeat_s=0.1, batch={"max_age_s": 60}), buffer, GW, Health())
    late = Collector(mosquitto_broker, topics.status(GW), client_id="late")
    async with running(uplink):
        await eventually(lambda: uplink.counters.heartbeats >= 1)
        async with late:
            await late.wait_until(lambda: len(heartbeats(late)) >= 3)
    first_topic, _, first_retained = late.messages[0]
    assert (first_topic, first_retained) == (topics.status(GW), True)
    beat = heartbeats(late)[-1]
    assert beat["state"] == "online"
    assert beat["agent_version"] == edge_agent.__version__
    assert beat["config_version"] == "cfg-3"
    assert beat["decode_errors"] == {"dev-1": 2}
    assert beat["uptime_s"] > 0
    assert beat["buffer"]["depth_items"] == 10
    assert beat["buffer"]["depth_bytes"] > 0
    assert beat["buffer"]["dropped"] == {"alerts": 0, "status": 0, "telemetry": 0}
    assert "autonomy_h" in beat
    assert beat["uplink"]["connected"] is True
    assert beat["uplink"]["heartbeats"] >= 2


async def test_graceful_stop_publishes_retained_offline(mosquitto_broker: Mosquitto, buffer: DurableBuffer) -> None:
    """Cancelling the uplink replaces the retained status by offline (a clean DISCONNECT sends no Will)."""
    uplink = Uplink(settings(mosquitto_broker), buffer, GW, Health())
    async with Collector(mosquitto_broker, topics.status(GW)) as sub:
        async with running(uplink):
            await sub.wait_until(lambda: len(heartbeats(sub)) >= 1)
        await sub.wait_until(lambda: sub.messages[-1][1] == topics.OFFLINE)
    async with Collector(mosquitto_broker, topics.status(GW), client_id="after") as after:
        await after.wait_until(lambda: len(after.messages) == 1)
    assert after.messages == [(topics.status(GW), topics.OFFLINE, True)]


async def test_broker_rejection_keeps_the_data(
    mosquitto_auth_broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Publishing as another gateway is refused (0x87): nothing is acked, the buffer keeps every reading."""
    caplog.set_level(logging.INFO, logger="edge_agent.uplink")
    with DurableBuffer(tmp_path / "b.db", gateway="gw-b", max_bytes=1 << 24) as buf:
        buf.put_readings(readings(0, 50))
        uplink = Uplink(
            settings(mosquitto_auth_broker, username="gw-a", password=BROKER_USERS["gw-a"]),
            buf,
            "gw-b",
            Health(),
        )
        sub = Collector(mosquitto_auth_broker, username="ingest", password=BROKER_USERS["ingest"])
        async with sub, running(uplink):
            await sub.wait_until(lambda: uplink.counters.publish_errors >= 2)
        assert uplink.counters.acked == 0
        assert uplink.counters.reconnects == 0
        assert buf.stats().depth_items == 50
        assert not any(topic.startswith("gw/gw-b/") for topic, _, _ in sub.messages)
    # Retried at the capped backoff pace and logged once, with the broker's reason.
    [warning] = [r.getMessage() for r in caplog.records if r.name == "edge_agent.uplink" and r.levelno >= logging.INFO]
    assert "Not authorized" in warning


async def test_bad_password_retries_and_logs_once(
    mosquitto_auth_broker: Mosquitto, buffer: DurableBuffer, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused login is retried with backoff and logged once, never with the password."""
    caplog.set_level(logging.DEBUG, logger="edge_agent.uplink")
    uplink = Uplink(
        settings(mosquitto_auth_broker, username=GW, password="not-the-password", backoff_max_s=0.05),
        buffer,
        GW,
        Health(),
    )
    async with running(uplink):
        await eventually(lambda: uplink.counters.failures >= 3)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "not established" in warnings[0].getMessage()
    assert uplink.connected is False
    assert "not-the-password" not in caplog.text
    assert "not-the-password" not in repr(uplink.settings)
    assert "not-the-password" not in orjson.dumps(uplink.settings.model_dump(mode="json")).decode()


async def test_unacked_batches_are_resent_first_with_same_seq_and_bytes(
    mosquitto_broker: Mosquitto, buffer: DurableBuffer
) -> None:
    """Batches sealed by a run that died before PUBACK go out again byte for byte, before new data."""
    buffer.put_readings(readings(0, 300))
    sealed = buffer.next_batches(3, max_items=100, max_bytes=1 << 20, now_ms=T0)
    buffer.put_readings(readings(300, 50))
    uplink = Uplink(settings(mosquitto_broker, batch={"max_items": 100, "max_age_s": 0.1}), buffer, GW, Health())
    async with Collector(mosquitto_broker, topics.telemetry(GW)) as sub, running(uplink):
        await sub.wait_until(lambda: len(sub.messages) == 4)
    assert [payload for _, payload, _ in sub.messages[:3]] == [batch.payload for batch in sealed]
    assert decode_envelope(sub.messages[3][1]).seq == sealed[-1].seq + 1
    assert values(sub) == [float(i) for i in range(350)]
