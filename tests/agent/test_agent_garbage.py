"""Every port gets garbage: the agent counts it per device, keeps decoding the good data, and never crashes."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest

from device_profiles import load_profiles
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, resolve_devices
from gridwatch.broker import Mosquitto, free_port
from simulators.faults import Faults, FaultSpec
from simulators.gnss import GnssSimulator
from simulators.hj212 import Hj212Simulator, Hj212Station
from simulators.modbus import ModbusSimulator, Slave
from simulators.mqtt_sensors import MqttSensorsSimulator, default_sensors
from tests.agent.agent_rig import STATION_MN, edge_document
from tests.support.upstream import UpstreamView
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

DEVICES = ("gnss-1", "air-1", "TH-0001", "MH-0001", "pressure-1", "gas-tunnel-3")


def faults(seed: int) -> Faults:
    """Heavy, seeded damage: junk before frames, broken checksums, truncated frames."""
    return Faults(FaultSpec(garbage=0.3, checksum=0.2, truncate=0.1), random.Random(seed))


async def test_garbage_on_every_port_is_counted_and_good_data_still_flows(tmp_path: Path) -> None:
    """GNSS, HJ 212, Modbus and MQTT sources all see damaged frames; each device still delivers readings."""
    async with contextlib.AsyncExitStack() as stack:
        field = await stack.enter_async_context(Mosquitto(tmp_path / "field"))
        upstream = await stack.enter_async_context(Mosquitto(tmp_path / "upstream"))
        gnss = await stack.enter_async_context(GnssSimulator(tmp_path / "gnss0", rate_hz=5, faults=faults(1)))
        slaves = [Slave.bundled(1, "water-pressure-modbus"), Slave.bundled(3, "tunnel-gas-modbus")]
        line = await stack.enter_async_context(ModbusSimulator(tmp_path / "rs485", slaves, faults=faults(2)))
        await stack.enter_async_context(
            MqttSensorsSimulator("127.0.0.1", field.port, default_sensors(), interval_s=0.2, faults=faults(3))
        )
        hj212_port = free_port()
        document = edge_document(tmp_path, line.path, gnss.path, field.port, upstream.port, hj212_port)
        config = AgentConfig.model_validate(document)
        agent = Agent(config, resolve_devices(config, load_profiles()))
        task = asyncio.create_task(agent.run())
        view = UpstreamView()
        follower = asyncio.create_task(view.follow(upstream.port))
        station = Hj212Station(mn=STATION_MN, ack=True, faults=faults(4))
        await stack.enter_async_context(
            Hj212Simulator(host="127.0.0.1", port=hj212_port, rtd_interval=1, station=station)
        )

        def every_device_delivered_and_complained() -> bool:
            delivered = {device for device, _ in view.latest}
            errors = agent.pipeline.decode_errors()
            return delivered >= set(DEVICES) and {"gnss-1", "TH-0001", "pressure-1"} <= set(errors)

        try:
            await eventually(every_device_delivered_and_complained, within_s=60, what="readings and errors")
        finally:
            follower.cancel()
            agent.stopping.set()
            await asyncio.wait_for(task, timeout=10)
    errors = agent.pipeline.decode_errors()
    assert errors["gnss-1"].get("checksum", 0) > 0
    assert errors["TH-0001"].get("bad_json", 0) > 0
    assert sum(errors["pressure-1"].values()) > 0
    assert task.exception() is None
