"""A 200-device bench fleet: composition and cadence in; agent config documents and pre-built chunks out.

The chunks are what the agent's sources hand the pipeline (bytes for NMEA, HJ 212 and JSON; decoded
samples for Modbus, whose poller decodes registers itself), built from the simulators' sans-I/O models,
so timing the pipeline on them costs nothing on the source side.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from device_profiles import BUNDLED_DIR, Profile, load_profiles
from edge_agent.config import DeviceSpec, parse_config, resolve_devices
from edge_agent.decode.modbus import decode_registers, plan_reads
from edge_agent.intake import Chunk
from simulators.gnss import GnssReceiver, LoopTrack
from simulators.hj212 import Hj212Station
from simulators.modbus_encode import RegisterImage
from simulators.mqtt_sensors import MqttSensor
from simulators.scenario import Scenario, scenario
from simulators.values import device_values, measures_by_source

GATEWAY = "gw-bench"
T0_MS = 1_700_000_000_000
TZ = ZoneInfo("Asia/Shanghai")
MODBUS_PROFILES = (
    "water-pressure-modbus",
    "drainage-level-modbus",
    "gas-detector-modbus",
    "flowmeter-modbus",
    "tunnel-gas-modbus",
)
MQTT_PROFILES = ("temp-humidity-mqtt", "manhole-tilt-mqtt")


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often each kind of device reports, in seconds (the live-rate assumption)."""

    modbus: float = 5.0
    mqtt: float = 10.0
    gnss: float = 1.0
    hj212: float = 30.0


@dataclass(frozen=True, slots=True)
class Mix:
    """How many devices of each kind the fleet has."""

    mqtt: int = 100
    modbus: int = 60
    gnss: int = 20
    hj212: int = 20

    @property
    def total(self) -> int:
        """Return the number of devices."""
        return self.mqtt + self.modbus + self.gnss + self.hj212


def mn(i: int) -> str:
    """Return the MN of HJ 212 station `i`."""
    return f"GW0101A{i:07d}"


def device_docs(mix: Mix, cadence: Cadence, modbus_lines: int = 4, gnss_ports: int | None = None) -> dict[str, Any]:
    """Return the `ports` and `devices` sections of an agent config for `mix` (ports are placeholders)."""
    gnss_ports = mix.gnss if gnss_ports is None else gnss_ports
    ports = [{"name": f"rs485-{k}", "path": f"/dev/null-rs485-{k}"} for k in range(modbus_lines)]
    ports += [{"name": f"gnss-{k}", "path": f"/dev/null-gnss-{k}"} for k in range(gnss_ports)]
    devices: list[dict[str, Any]] = []
    for i in range(mix.mqtt):
        profile = MQTT_PROFILES[i % len(MQTT_PROFILES)]
        devices.append({"id": f"mq-{i}", "profile": profile, "topic": f"sensors/mq-{i}/data"})
    for i in range(mix.modbus):
        devices.append(
            {
                "id": f"mb-{i}",
                "profile": MODBUS_PROFILES[i % len(MODBUS_PROFILES)],
                "port": f"rs485-{i % modbus_lines}",
                "slave": i // modbus_lines + 1,
                "interval": f"{cadence.modbus}s",
            }
        )
    for i in range(mix.gnss):
        devices.append({"id": f"gnss-{i}", "profile": "gnss-nmea", "port": f"gnss-{i % max(gnss_ports, 1)}"})
    for i in range(mix.hj212):
        devices.append({"id": f"hj-{i}", "profile": "hj212", "mn": mn(i)})
    for k, doc in enumerate(devices):
        # Spread the fleet over a 2 km square: geofence and place lookups see distinct places.
        doc["place"] = {"lat": 34.79 + (k % 20) * 0.001, "lon": 113.52 + (k // 20) * 0.001, "grid": "41010210100101"}
    return {"ports": ports, "devices": devices}


def config_doc(data_dir: Path, mix: Mix, cadence: Cadence, **sections: Any) -> dict[str, Any]:
    """Return a whole agent config document for `mix`; `sections` override or add top-level keys."""
    doc: dict[str, Any] = {
        "gateway": {"id": GATEWAY, "data_dir": str(data_dir)},
        "uplink": {"host": "127.0.0.1", "port": 1883},
        "local_broker": {"host": "127.0.0.1", "port": 1883},
        "hj212_listen": {"host": "127.0.0.1", "port": 0},
        **device_docs(mix, cadence),
    }
    doc.update(sections)
    return doc


def specs_for(mix: Mix, cadence: Cadence, data_dir: Path) -> list[DeviceSpec]:
    """Return the resolved device specs of `mix` against the bundled profiles."""
    config = parse_config(config_doc(data_dir, mix, cadence), "bench")
    return resolve_devices(config, load_profiles([BUNDLED_DIR]))


class _Device:
    """One simulated device: `chunk(t)` is what its source hands the pipeline at scenario time t."""

    def __init__(self, spec: DeviceSpec, index: int, values: Scenario) -> None:
        self.id = spec.device.id
        self.profile: Profile = spec.profile
        self.values = values
        read = spec.profile.read
        self.kind = read.decoder
        self.measures = measures_by_source(spec.profile, read.source_keys() or ())
        if self.kind == "nmea":
            self.gnss = GnssReceiver(LoopTrack(center_lat=34.79 + index * 0.002, center_lon=113.52))
        elif self.kind == "hj212":
            assert spec.device.mn is not None
            self.station = Hj212Station(mn=spec.device.mn, profile=spec.profile, values=values)
        elif self.kind == "modbus":
            assert read.modbus is not None
            self.modbus = read.modbus
            self.image = RegisterImage(spec.profile)
            self.blocks = plan_reads(read.modbus)
        else:
            self.sensor = MqttSensor(self.id, spec.profile)

    def chunk(self, t: float) -> Chunk:
        ms = T0_MS + round(t * 1000)
        if self.kind == "nmea":
            when = datetime.fromtimestamp(ms / 1000, tz=UTC)
            return Chunk(self.id, b"".join(self.gnss.epoch(t, when)), ms)
        if self.kind == "hj212":
            self.station.sample(t)
            return Chunk(self.id, self.station.realtime(ms), ms)
        if self.kind == "modbus":
            self.image.update(device_values(self.measures, self.values, t))
            words = {
                b: [self.image.words.get((b.function, a), 0) for a in range(b.address, b.address + b.count)]
                for b in self.blocks
            }
            return Chunk(self.id, decode_registers(self.modbus, words), ms)
        return Chunk(self.id, self.sensor.payload(device_values(self.measures, self.values, t), ms, TZ), ms)


def period(spec: DeviceSpec, cadence: Cadence) -> float:
    """Return the reporting period of a device under `cadence`."""
    decoder = spec.profile.read.decoder
    return {"nmea": cadence.gnss, "hj212": cadence.hj212, "modbus": cadence.modbus}.get(decoder, cadence.mqtt)


def live_chunks(specs: Sequence[DeviceSpec], cadence: Cadence, seconds: float) -> Iterator[Chunk]:
    """Yield every chunk the fleet produces in `seconds` of scenario time, in event-time order.

    Devices start at staggered phases within their period, as a real fleet does.
    """
    values = scenario("normal")
    devices = [_Device(spec, i, values) for i, spec in enumerate(specs)]
    periods = [period(spec, cadence) for spec in specs]
    # Whole-second phases: receivers and pollers tick on the second.
    heap = [(float(int(p * (i % 97) / 97)), i) for i, p in enumerate(periods)]
    heapq.heapify(heap)
    while heap:
        t, i = heapq.heappop(heap)
        if t >= seconds:
            continue
        yield devices[i].chunk(round(t, 3))
        heapq.heappush(heap, (t + periods[i], i))
