"""A test rig around a real agent process: field and upstream brokers, a publisher and the upstream view."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import yaml

from gateway import topics
from gateway.contract import decode_envelope
from tests.support.mosquitto import Collector, Mosquitto

GATEWAY = "gw-e2e"
STATION_MN = "GW0101A0000001"
SENSORS = ("TH-1", "TH-2")


def write_config(
    path: Path, field: Mosquitto, upstream: Mosquitto, extra_rules: list[dict[str, Any]] | None = None
) -> Path:
    """Write an agent configuration for two MQTT temperature/humidity sensors (with extra rules on each)."""
    doc = {
        "gateway": {"id": GATEWAY, "data_dir": str(path.parent / "agent-data")},
        "uplink": {
            "host": upstream.host,
            "port": upstream.port,
            "heartbeat_s": 1,
            "backoff_initial_s": 0.1,
            "backoff_max_s": 1.0,
            "batch": {"max_items": 500, "max_age_s": 0.2},
        },
        "local_broker": {"host": field.host, "port": field.port},
        "devices": [
            {
                "id": sensor,
                "profile": "temp-humidity-mqtt",
                "topic": f"sensors/{sensor}/data",
                "extra_rules": extra_rules or [],
            }
            for sensor in SENSORS
        ],
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


async def start_agent(config: Path) -> asyncio.subprocess.Process:
    """Start `gridwatch agent` as its own process (so that it can be SIGKILLed like on a gateway)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridwatch",
        "agent",
        "--config",
        str(config),
        "--log-level",
        "WARNING",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def stop_agent(proc: asyncio.subprocess.Process, sig: signal.Signals = signal.SIGTERM) -> bytes:
    """Stop the agent with `sig`, reap it and return what it logged."""
    if proc.returncode is None:
        proc.send_signal(sig)
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
    return stderr


def payload(sensor: str, i: int, base: datetime) -> bytes:
    """Return message `i` of a sensor: a unique millisecond timestamp and values that encode `i`."""
    return reading_payload(sensor, base.timestamp() + i / 1000, 20 + i % 100 / 10, 40 + i % 50)


def reading_payload(sensor: str, ts: float, temperature: float, humidity: float) -> bytes:
    """Return a temperature/humidity message measured at `ts` (seconds since the epoch)."""
    stamp = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")
    return orjson.dumps({"sn": sensor, "time": stamp, "temperature": temperature, "humidity": humidity})


async def publish(field: Mosquitto, per_second: int, seconds: float, base: datetime, sent: Counter[str]) -> None:
    """Publish `per_second` messages per sensor per second at QoS 1 for `seconds`, counting what the broker took."""
    total = int(per_second * seconds)
    async with aiomqtt.Client(field.host, field.port, identifier="field-sensors") as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(total):
            for sensor in SENSORS:
                await client.publish(f"sensors/{sensor}/data", payload(sensor, i, base), qos=1)
                sent[sensor] += 1
            # Pace to the wall clock: the rate is part of what is tested, not a synchronisation.
            delay = start + (i + 1) / per_second - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)


class Upstream:
    """What reached the upstream broker, read from a persistent-session collector."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def envelopes(self) -> list[tuple[int, bytes]]:
        """Return (seq, payload) of every telemetry envelope received, duplicates included."""
        out = []
        for topic, data, _ in list(self.collector.messages):
            if topic == topics.telemetry(GATEWAY):
                out.append((decode_envelope(data).seq, data))
        return out

    def readings_after_seq_dedup(self) -> Counter[tuple[str, str, int]]:
        """Count each (device, quantity, ts) over envelopes applied once per seq."""
        applied: dict[int, bytes] = {}
        for seq, data in self.envelopes():
            previous = applied.setdefault(seq, data)
            assert previous == data, f"seq {seq} was reused for different content"
        counts: Counter[tuple[str, str, int]] = Counter()
        for data in applied.values():
            for r in decode_envelope(data).readings:
                counts[(r.device, r.quantity, r.ts_ms)] += 1
        return counts

    def alerts(self) -> list[tuple[str, str, int]]:
        """Return (rule, state, ts_ms) of every alert received, after dedup by seq."""
        seen: dict[int, bytes] = {}
        for topic, data, _ in list(self.collector.messages):
            if topic == topics.alerts(GATEWAY):
                seen.setdefault(decode_envelope(data).seq, data)
        return [(a.rule, a.state.value, a.ts_ms) for data in seen.values() for a in decode_envelope(data).alerts]

    def online(self) -> bool:
        """Whether the agent's retained status says online."""
        for topic, data, _ in reversed(self.collector.messages):
            if topic == topics.status(GATEWAY):
                return data != topics.OFFLINE
        return False


async def prepare_sensor_session(field: Mosquitto) -> None:
    """Create the agent's persistent field-broker session, so nothing published before it connects is lost."""
    async with aiomqtt.Client(field.host, field.port, identifier=f"{GATEWAY}-sensors", clean_session=False) as client:
        for sensor in SENSORS:
            await client.subscribe(f"sensors/{sensor}/data", qos=1)


def edge_document(
    workdir: Path, rs485: Path, gnss: Path, field_port: int, upstream_port: int, hj212_port: int
) -> dict[str, Any]:
    """An edge-only gateway (no cloud): GNSS, four Modbus slaves, two MQTT sensors and an HJ 212 station."""
    grid = "41010210100101"
    return {
        "gateway": {"id": "gw-demo-1", "data_dir": str(workdir / "agent")},
        "uplink": {"host": "127.0.0.1", "port": upstream_port, "heartbeat_s": 2, "batch": {"max_age_s": 0.5}},
        "buffer": {"max_bytes": "64MiB"},
        "ports": [
            {"name": "gnss", "path": str(gnss)},
            {"name": "rs485", "path": str(rs485), "serial": {"baudrate": 9600}},
        ],
        "local_broker": {"host": "127.0.0.1", "port": field_port},
        "hj212_listen": {"host": "127.0.0.1", "port": hj212_port},
        "devices": [
            {"id": "gnss-1", "profile": "gnss-nmea", "port": "gnss", "place": {"grid": grid}},
            {"id": "pressure-1", "profile": "water-pressure-modbus", "port": "rs485", "slave": 1, "interval": "1s"},
            {"id": "gas-tunnel-3", "profile": "tunnel-gas-modbus", "port": "rs485", "slave": 3, "interval": "1s"},
            {"id": "MH-0001", "profile": "manhole-tilt-mqtt", "topic": "sensors/MH-0001/data"},
            {"id": "TH-0001", "profile": "temp-humidity-mqtt", "topic": "sensors/TH-0001/data"},
            {"id": "air-1", "profile": "hj212", "mn": STATION_MN},
        ],
    }
