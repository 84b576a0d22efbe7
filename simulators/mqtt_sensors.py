"""MQTT JSON sensors: profiles and scenario values in, JSON messages on `sensors/<device>/data` out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

import aiomqtt
import orjson

from device_profiles import BUNDLED_DIR, Profile, load_profile
from gateway.aio import cancel_and_wait
from simulators.clock import ScenarioClock
from simulators.errors import SimulatorError
from simulators.faults import Faults
from simulators.scenario import Scenario, scenario
from simulators.values import check_scenario, device_values, measures_by_source

TOPIC = "sensors/{device}/data"


def set_path(doc: dict[str, Any], path: str, value: object) -> None:
    """Set a dotted path (`data.tilt`, `values.0`) in a JSON document, creating objects and lists."""
    parts = path.split(".")
    node: Any = doc
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        fresh: Any = None if last else ([] if parts[index + 1].isdigit() else {})
        if isinstance(node, list):
            slot = int(part)
            node.extend([None] * (slot + 1 - len(node)))
            if last:
                node[slot] = value
            elif node[slot] is None:
                node[slot] = fresh
            node = node[slot]
        elif last:
            node[part] = value
        else:
            node = node.setdefault(part, fresh)


def timestamp(ms: int, time_format: str, tz: ZoneInfo) -> object:
    """Format an event time the way the profile's `time_format` says."""
    if time_format == "epoch_ms":
        return ms
    if time_format == "epoch_s":
        return ms // 1000
    return datetime.fromtimestamp(ms / 1000, tz=tz).isoformat(timespec="seconds")


@dataclass(slots=True)
class MqttSensor:
    """One JSON sensor: its device name and profile (which fields go where in the message)."""

    device: str
    profile: Profile

    @classmethod
    def bundled(cls, device: str, profile_name: str) -> MqttSensor:
        """Build a sensor from a bundled profile by name."""
        return cls(device, load_profile(BUNDLED_DIR / f"{profile_name}.yaml"))

    @property
    def topic(self) -> str:
        """Return the topic the sensor publishes on."""
        return TOPIC.format(device=self.device)

    def payload(self, values: dict[str, float], ms: int, tz: ZoneInfo) -> bytes:
        """Return the JSON message for device values by source key at UTC `ms`."""
        spec = self.profile.read.json_
        if spec is None:
            raise SimulatorError(f"profile {self.profile.name!r} has no JSON fields")
        doc: dict[str, Any] = {}
        if spec.time_field is not None:
            set_path(doc, spec.time_field, timestamp(ms, spec.time_format, tz))
        for source, path in spec.fields.items():
            if source in values:
                set_path(doc, path, round(values[source], 3))
        return orjson.dumps(doc)


def default_sensors() -> list[MqttSensor]:
    """Return one manhole-cover sensor and one temperature/humidity sensor."""
    return [
        MqttSensor.bundled("MH-0001", "manhole-tilt-mqtt"),
        MqttSensor.bundled("TH-0001", "temp-humidity-mqtt"),
    ]


class MqttSensorsSimulator:
    """Sensors publishing every `interval_s` to a broker until the context exits.

    `async with MqttSensorsSimulator("127.0.0.1", port, interval_s=1) as sim:` — subscribe to
    `sensors/+/data`. Faults: value faults, `garbage`/`checksum`/`truncate` spoil a payload, and an
    unplug or silence stops a sensor's messages for its duration.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sensors: Sequence[MqttSensor] | None = None,
        *,
        interval_s: float = 5.0,
        values: Scenario | None = None,
        clock: ScenarioClock | None = None,
        faults: Faults | None = None,
        timezone: str = "Asia/Shanghai",
        qos: int = 1,
    ) -> None:
        self.host, self.port = host, port
        self.sensors = list(sensors) if sensors is not None else default_sensors()
        self.values = values or scenario("normal")
        self._measures = {}
        for sensor in self.sensors:
            measures = measures_by_source(sensor.profile, sensor.profile.read.source_keys() or ())
            check_scenario(sensor.profile, measures.values(), self.values)
            self._measures[sensor.device] = measures
        self.interval_s = interval_s
        self.clock = clock or ScenarioClock.from_now()
        self.faults = faults or Faults()
        self.tz = ZoneInfo(timezone)
        self.qos = qos
        self.published = 0
        self.lost_in_outage = 0
        self.connected = asyncio.Event()
        self._outage_until = -1.0
        self._task: asyncio.Task[None] | None = None

    def messages(self, t: float) -> list[tuple[str, bytes]]:
        """Return (topic, payload) of every sensor at scenario time `t`, after faults."""
        out = []
        ms = self.clock.ms(t)
        for sensor in self.sensors:
            values = device_values(self._measures[sensor.device], self.values, t, self.faults)
            payload = sensor.payload(values, ms + round(self.faults.clock_offset_s() * 1000), self.tz)
            out.append((sensor.topic, self.faults.frame(payload, binary=True)))
        return out

    async def run(self, until: float | None = None) -> None:
        """Connect and publish on the scenario clock; reconnect when the broker goes away."""
        identifier = f"gridwatch-sim-{id(self):x}"
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=identifier) as client:
                    self.connected.set()
                    await self._publish_loop(client, until)
                    return
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(1.0)

    async def _publish_loop(self, client: aiomqtt.Client, until: float | None) -> None:
        async for t in self.clock.ticks(self.interval_s, until):
            if t >= self._outage_until:
                outage = self.faults.outage(self.interval_s)
                if outage is not None:
                    spec = self.faults.spec
                    self._outage_until = t + (spec.unplug_for if outage == "unplug" else spec.silence_for)
            messages = self.messages(t)
            if t < self._outage_until:
                self.lost_in_outage += len(messages)
                continue
            for topic, payload in messages:
                await client.publish(topic, payload, qos=self.qos)
                self.published += 1

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.run(), name="mqtt sensors")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
