"""Helpers for the registry tests: a registry on a temp SQLite file, with or without a broker password file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt

from cloud.broker_sync import BrokerSync
from cloud.db import Database
from cloud.registry import Device, Registry
from gateway.enrolment import BrokerEndpoint
from tests.support.mosquitto import Mosquitto

T0 = 1_718_000_000_000
HOUR_MS = 3_600_000


def make_registry(tmp_path: Path, broker: BrokerSync | None = None, endpoint: BrokerEndpoint | None = None) -> Registry:
    """Return a registry on a fresh SQLite file in tmp_path."""
    db = Database.open(tmp_path / "registry.db")
    return Registry(db, endpoint or BrokerEndpoint(host="127.0.0.1", port=1883), broker=broker)


def broker_registry(tmp_path: Path, broker: Mosquitto) -> Registry:
    """Return a registry that syncs the running broker's password file and hands out its endpoint."""
    assert broker.files.password_file is not None
    sync = BrokerSync(broker.files.password_file, pid=broker.pid)
    return make_registry(tmp_path, sync, BrokerEndpoint(host=broker.host, port=broker.port))


def gnss_device(device: str, gateway: str, port_path: str = "/dev/ttyUSB0") -> Device:
    """Return a GNSS receiver bound to `gateway` with its serial port in the device settings."""
    return Device(
        id=device,
        gateway=gateway,
        profile="gnss-nmea",
        part_id="4101021501000003",
        lat=34.7981,
        lon=113.5312,
        grid="41010210100101",
        settings={"port": "gnss"},
    )


def gnss_document(gateway: str, host: str, port: int, serial_path: str, devices: list[Device]) -> dict[str, object]:
    """Return a bundle document running `devices` on one serial port named gnss at `serial_path`."""
    return {
        "gateway": {"id": gateway},
        "uplink": {"host": host, "port": port, "username": gateway, "heartbeat_s": 1},
        "ports": [{"name": "gnss", "path": serial_path}],
        "devices": [d.agent_entry() for d in devices],
    }


def seed_bundle(registry: Registry, gateway: str, now: int, serial_path: str = "/dev/ttyUSB0") -> None:
    """Store the gateway's first bundle: its registered devices on a serial port named gnss."""
    document = registry.default_document(gateway)
    document["ports"] = [{"name": "gnss", "path": serial_path}]
    registry.bundles.create(gateway, document, now)


async def wait_connectable(broker: Mosquitto, user: str, password: str, within_s: float = 5.0) -> None:
    """Return once `user` can connect; the broker applies a SIGHUP reload asynchronously."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        client = aiomqtt.Client(
            broker.host, broker.port, username=user, password=password, protocol=aiomqtt.ProtocolVersion.V5, timeout=5
        )
        try:
            async with client:
                return
        except aiomqtt.MqttCodeError:
            assert asyncio.get_running_loop().time() < deadline, broker.log()
            await asyncio.sleep(0.05)
