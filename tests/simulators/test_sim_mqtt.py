"""Tests of the MQTT JSON sensors against a real mosquitto: topics, profile field paths, time formats."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import orjson
import pytest

from gridwatch.broker import free_port
from simulators.clock import ScenarioClock
from simulators.faults import Faults, FaultSpec
from simulators.mqtt_sensors import MqttSensor, MqttSensorsSimulator, set_path
from simulators.scenario import scenario

START = datetime(2024, 6, 1, 0, 0, 0, tzinfo=UTC)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """Run a mosquitto on a free port for one test and return the port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-p", str(port)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, "mosquitto exited"
                assert time.monotonic() < deadline, "mosquitto did not start listening"
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


async def collect(port: int, sim: MqttSensorsSimulator, count: int) -> list[aiomqtt.Message]:
    """Subscribe to sensors/+/data, run the simulator, return the first `count` messages."""
    out: list[aiomqtt.Message] = []
    async with aiomqtt.Client("127.0.0.1", port, identifier="test-subscriber") as client:
        await client.subscribe("sensors/+/data", qos=1)
        async with sim, asyncio.timeout(15):
            async for message in client.messages:
                out.append(message)
                if len(out) >= count:
                    break
    return out


def test_set_path_builds_nested_objects_and_lists() -> None:
    """Dotted paths create objects and, for numeric parts, list slots."""
    doc: dict[str, object] = {}
    set_path(doc, "data.tilt", 1.5)
    set_path(doc, "data.battery", 80)
    set_path(doc, "values.1", 7)
    set_path(doc, "ts", 1)
    assert doc == {"data": {"tilt": 1.5, "battery": 80}, "values": [None, 7], "ts": 1}


@pytest.mark.integration
async def test_sensors_publish_json_that_matches_their_profiles(broker: int) -> None:
    """Each sensor publishes on sensors/<device>/data with the profile's field paths and time format."""
    clock = ScenarioClock.from_datetime(START, speed=20.0)
    sim = MqttSensorsSimulator("127.0.0.1", broker, interval_s=1.0, clock=clock)
    messages = await collect(broker, sim, 6)
    by_topic: dict[str, list[dict[str, object]]] = {}
    for message in messages:
        by_topic.setdefault(str(message.topic), []).append(orjson.loads(message.payload))
    assert set(by_topic) == {"sensors/MH-0001/data", "sensors/TH-0001/data"}
    for doc in by_topic["sensors/MH-0001/data"]:
        assert isinstance(doc["ts"], int)
        assert doc["ts"] >= clock.start_ms
        data = doc["data"]
        assert isinstance(data, dict)
        assert 0 <= data["tilt"] < 10
        assert 0 < data["battery"] <= 100
    for doc in by_topic["sensors/TH-0001/data"]:
        stamp = datetime.fromisoformat(str(doc["time"]))
        assert stamp.utcoffset() is not None
        assert stamp.utcoffset().total_seconds() == 8 * 3600  # type: ignore[union-attr]
        assert stamp >= START
        assert isinstance(doc["temperature"], float)
        assert 0 <= doc["humidity"] <= 100  # type: ignore[operator]


@pytest.mark.integration
async def test_tilt_scenario_shows_in_the_payload(broker: int) -> None:
    """In the tilt scenario the manhole sensor reports the cover at 35 degrees during the event."""
    sensor = MqttSensor.bundled("MH-0042", "manhole-tilt-mqtt")
    clock = ScenarioClock.from_datetime(START, speed=20.0)
    sim = MqttSensorsSimulator(
        "127.0.0.1",
        broker,
        [sensor],
        interval_s=1.0,
        clock=clock,
        values=scenario("tilt", begin=2, duration=30),
    )
    messages = await collect(broker, sim, 8)
    tilts = [orjson.loads(m.payload)["data"]["tilt"] for m in messages]
    assert tilts[0] < 2
    assert max(tilts) == pytest.approx(35.0)


@pytest.mark.integration
async def test_payload_faults_make_malformed_json(broker: int) -> None:
    """With garbage=1.0 every payload starts with junk bytes and no longer parses as JSON."""
    clock = ScenarioClock.from_datetime(START, speed=20.0)
    faults = Faults(FaultSpec(garbage=1.0), random.Random(3))
    sim = MqttSensorsSimulator("127.0.0.1", broker, interval_s=1.0, clock=clock, faults=faults)
    messages = await collect(broker, sim, 4)
    for message in messages:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(message.payload)
