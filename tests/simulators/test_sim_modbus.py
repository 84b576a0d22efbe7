"""Tests of the Modbus RTU slaves: a real pymodbus client over a pty reads values encoded by the profiles."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from device_profiles import BUNDLED_DIR, load_profile
from simulators.clock import ScenarioClock
from simulators.faults import Faults, FaultSpec
from simulators.modbus import ModbusSimulator, Slave, default_slaves
from simulators.modbus_encode import RegisterImage, encode_value, wire_bytes
from simulators.scenario import scenario

START = datetime(2024, 6, 1, 8, 0, 0, tzinfo=UTC)


@pytest.fixture
async def client_factory(tmp_path: Path) -> AsyncIterator[list[AsyncModbusSerialClient]]:
    """Close every client a test opened."""
    clients: list[AsyncModbusSerialClient] = []
    yield clients
    for client in clients:
        client.close()


async def connect(
    path: Path, clients: list[AsyncModbusSerialClient], reply_timeout_s: float = 2.0
) -> AsyncModbusSerialClient:
    """Open a pymodbus RTU master on the simulator's line."""
    client = AsyncModbusSerialClient(
        str(path), framer=FramerType.RTU, baudrate=9600, timeout=reply_timeout_s, retries=0
    )
    clients.append(client)
    assert await client.connect()
    return client


def test_word_orders_follow_the_abcd_letters() -> None:
    """ABCD is big-endian, CDAB swaps words, BADC swaps bytes, DCBA reverses; 16-bit values use A and B."""
    value = bytes.fromhex("11223344")
    assert wire_bytes(value, "ABCD") == value
    assert wire_bytes(value, "CDAB") == bytes.fromhex("33441122")
    assert wire_bytes(value, "BADC") == bytes.fromhex("22114433")
    assert wire_bytes(value, "DCBA") == bytes.fromhex("44332211")
    assert wire_bytes(bytes.fromhex("1122"), "CDAB") == bytes.fromhex("1122")
    assert wire_bytes(bytes.fromhex("1122"), "BADC") == bytes.fromhex("2211")


def test_register_image_follows_each_bundled_profile() -> None:
    """Images of the bundled profiles hold decimals + value, mm levels and CDAB floats as the profiles say."""
    pressure = RegisterImage(load_profile(BUNDLED_DIR / "water-pressure-modbus.yaml"))
    pressure.update({"pressure": 0.35})
    assert pressure.decimals == {"decimals": 3}
    assert pressure.function_words(3) == {3: 3, 4: 350}
    level = RegisterImage(load_profile(BUNDLED_DIR / "drainage-level-modbus.yaml"))
    level.update({"level": 1234.0, "probe_temp": -4.5})
    assert level.function_words(3) == {0: 1234, 1: struct.unpack(">H", struct.pack(">h", -45))[0]}
    flow = RegisterImage(load_profile(BUNDLED_DIR / "flowmeter-modbus.yaml"))
    flow.update({"flow": 12.5, "total": 1000.0})
    words = flow.function_words(4)
    assert struct.unpack(">f", struct.pack(">HH", words[1], words[0]))[0] == 12.5
    assert struct.unpack(">f", struct.pack(">HH", words[9], words[8]))[0] == 1000.0


def test_integer_registers_saturate_instead_of_wrapping() -> None:
    """A value beyond an int16 register's range is held at the limit, as a transmitter does."""
    register = load_profile(BUNDLED_DIR / "water-pressure-modbus.yaml").read.modbus.registers[1]  # type: ignore[union-attr]
    assert encode_value(register, 99.0, 3) == [32767]
    assert encode_value(register, -99.0, 3) == [0x8000]


@pytest.mark.integration
async def test_pymodbus_master_reads_every_slave_on_the_line(
    tmp_path: Path, client_factory: list[AsyncModbusSerialClient]
) -> None:
    """Over the pty a real pymodbus RTU master reads each slave; struct decoding proves order and decimals."""
    values = scenario("normal")
    clock = ScenarioClock.from_datetime(START)
    async with ModbusSimulator(tmp_path / "rs485", default_slaves(), values=values, clock=clock) as sim:
        client = await connect(sim.path, client_factory)
        pressure = await client.read_holding_registers(3, count=2, device_id=1)
        decimals, raw = pressure.registers
        assert decimals == 3
        assert struct.unpack(">h", struct.pack(">H", raw))[0] / 10**decimals == pytest.approx(0.35, abs=0.02)

        level = await client.read_holding_registers(0, count=2, device_id=2)
        assert level.registers[0] / 1000 == pytest.approx(1.2, abs=0.1)  # mm on the wire, m canonical
        assert struct.unpack(">h", struct.pack(">H", level.registers[1]))[0] * 0.1 == pytest.approx(22, abs=2)

        gas = await client.read_holding_registers(0, count=2, device_id=3)
        assert gas.registers == [0, 2]  # 0 %LEL on a calm day, 2 decimal places

        flow = await client.read_input_registers(0, count=2, device_id=4)
        low, high = flow.registers
        assert struct.unpack(">f", struct.pack(">HH", high, low))[0] == pytest.approx(12.5, abs=1.5)
        total = await client.read_input_registers(8, count=2, device_id=4)
        low, high = total.registers
        assert struct.unpack(">f", struct.pack(">HH", high, low))[0] == pytest.approx(1000.0, abs=1.0)

        wrong_table = await client.read_input_registers(0, count=1, device_id=1)
        assert wrong_table.isError()


@pytest.mark.integration
async def test_registers_follow_the_scenario_clock(
    tmp_path: Path, client_factory: list[AsyncModbusSerialClient]
) -> None:
    """In a gas leak at 20x the detector's register climbs to 60 %LEL with its decimals applied."""
    gas = Slave(3, load_profile(BUNDLED_DIR / "gas-detector-modbus.yaml"))
    clock = ScenarioClock.from_datetime(START, speed=20.0)
    leak = scenario("gas-leak", begin=0, duration=20)
    async with ModbusSimulator(tmp_path / "rs485", [gas], values=leak, clock=clock) as sim:
        client = await connect(sim.path, client_factory)
        seen: list[float] = []
        async with asyncio.timeout(10):
            while not seen or seen[-1] < 60.0:
                reply = await client.read_holding_registers(0, count=2, device_id=3)
                raw, places = reply.registers
                seen.append(raw / 10**places)
    assert seen == sorted(seen)
    assert seen[-1] == 60.0


@pytest.mark.integration
async def test_absent_slaves_stay_silent_and_bad_crcs_fail_the_read(
    tmp_path: Path, client_factory: list[AsyncModbusSerialClient]
) -> None:
    """An id nobody has gets no answer; with checksum=1.0 every response fails the master's CRC check."""
    async with ModbusSimulator(tmp_path / "rs485", default_slaves()[:1]) as sim:
        client = await connect(sim.path, client_factory, reply_timeout_s=0.3)
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(3, count=2, device_id=9)
    faults = Faults(FaultSpec(checksum=1.0), random.Random(1))
    async with ModbusSimulator(tmp_path / "rs485b", default_slaves()[:1], faults=faults) as sim:
        client = await connect(sim.path, client_factory, reply_timeout_s=0.3)
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(3, count=2, device_id=1)
        assert faults.counts["checksum"] >= 1
