"""Modbus poller against a real pymodbus RTU server on a pty: samples decoded, silent slaves counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from device_profiles import BUNDLED_DIR, load_profiles
from edge_agent.config import AgentConfig, DeviceSpec, PortSection, resolve_devices
from edge_agent.decode.base import DecodeStats, Sample
from edge_agent.intake import Intake
from edge_agent.sources.modbus import ModbusPoller
from gateway.aio import cancel_and_wait
from simulators.modbus import ModbusSimulator, default_slaves
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def specs(link: Path, slaves: dict[str, tuple[str, int]]) -> list[DeviceSpec]:
    """Resolve Modbus devices on one line from (profile, slave id) pairs."""
    config = AgentConfig.model_validate(
        {
            "gateway": {"id": "gw-test"},
            "uplink": {},
            "ports": [{"name": "rs485", "path": str(link)}],
            "devices": [
                {"id": d, "profile": p, "port": "rs485", "slave": s, "interval": "0.2s"} for d, (p, s) in slaves.items()
            ],
        }
    )
    return resolve_devices(config, load_profiles([BUNDLED_DIR]))


async def test_poller_reads_every_slave_on_the_line(tmp_path: Path) -> None:
    """Pressure, level, gas and flow slaves on one line are each polled and decoded."""
    link = tmp_path / "rs485"
    devices = {
        "pressure": ("water-pressure-modbus", 1),
        "level": ("drainage-level-modbus", 2),
        "gas": ("gas-detector-modbus", 3),
        "flow": ("flowmeter-modbus", 4),
        "ghost": ("gas-detector-modbus", 9),  # no such slave answers on the line
    }
    intake = Intake()
    stats = {d: DecodeStats() for d in devices}
    async with ModbusSimulator(link, default_slaves()):
        poller = ModbusPoller(PortSection(name="rs485", path=str(link)), specs(link, devices), intake, stats)
        task = asyncio.create_task(poller.run())
        seen: dict[str, set[str]] = {}

        def collect() -> bool:
            while intake.depth():
                chunk = intake._queue.get_nowait()
                assert not isinstance(chunk.data, bytes)
                seen.setdefault(chunk.device, set()).update(s.key for s in chunk.data if isinstance(s, Sample))
            return set(seen) >= {"pressure", "level", "gas", "flow"} and stats["ghost"].counts["timeout"] >= 1

        try:
            await eventually(collect, within_s=20, what="a poll of every slave and a timeout of the ghost")
        finally:
            await cancel_and_wait(task)
    assert "pressure" in seen["pressure"]
    assert "gas" in seen["gas"]
    assert "ghost" not in seen
    assert stats["gas"].counts["frames"] >= 1
