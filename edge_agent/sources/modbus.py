"""Modbus RTU source: polls the slaves of one RS-485 line with pymodbus; decoded samples into the intake."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_agent.config import DeviceSpec, PortSection
from edge_agent.decode.base import DecodeStats
from edge_agent.decode.modbus import ModbusDecodeError, ReadBlock, decode_registers, plan_reads
from edge_agent.intake import Chunk, Intake
from edge_agent.sources import wall_ms
from edge_agent.sources.link import LinkState
from gateway.backoff import Backoff

if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusSerialClient

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PolledDevice:
    """One slave on the line: its plan, cadence and counters."""

    spec: DeviceSpec
    slave: int
    blocks: list[ReadBlock]
    interval_s: float
    timeout_s: float
    stats: DecodeStats
    due: float = 0.0


class ModbusPoller:
    """Polls each slave of one serial line on its own interval, one request at a time (half duplex)."""

    def __init__(
        self,
        port: PortSection,
        specs: Sequence[DeviceSpec],
        intake: Intake,
        stats: Mapping[str, DecodeStats] | None = None,
        clock: Callable[[], int] = wall_ms,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = f"modbus:{port.name}"
        self.port = port
        self.intake = intake
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.link = LinkState(f"{self.name} ({port.path})", log)
        self.counters: Counter[str] = Counter()
        self.devices: list[PolledDevice] = []
        for spec in specs:
            modbus = spec.profile.read.modbus
            if modbus is None or spec.device.slave is None:
                raise ValueError(f"{spec.device.id}: not a Modbus device")
            interval = spec.device.interval if spec.device.interval is not None else modbus.interval
            # Counts go to the device's own decoder stats when given, so health shows one set per device.
            device_stats = (stats or {}).get(spec.device.id) or DecodeStats()
            self.devices.append(
                PolledDevice(spec, spec.device.slave, plan_reads(modbus), interval, modbus.timeout, device_stats)
            )

    def _client(self) -> AsyncModbusSerialClient:
        """Build a client for the line; retries are ours (counted), not pymodbus's."""
        # pymodbus (~10 MB of imports) is loaded only once a Modbus line runs.
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient

        settings = self.port.serial
        timeout = max((d.timeout_s for d in self.devices), default=1.0)
        return AsyncModbusSerialClient(
            self.port.path,
            framer=FramerType.RTU,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
        )

    async def run(self) -> None:
        """Poll forever; a line that cannot be opened is retried with jittered, capped backoff."""
        loop = asyncio.get_running_loop()
        while True:
            client = self._client()
            try:
                connected = await client.connect()
                if not connected:
                    self.link.went_down("cannot open port")
                    await asyncio.sleep(self.backoff.next())
                    continue
                self.link.went_up()
                self.backoff.reset()
                while client.connected:
                    device = min(self.devices, key=lambda d: d.due)
                    delay = device.due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    device.due = loop.time() + device.interval_s
                    await self.poll(client, device)
                self.link.went_down("port closed")
            finally:
                client.close()
            await asyncio.sleep(self.backoff.next())

    async def poll(self, client: AsyncModbusSerialClient, device: PolledDevice) -> None:
        """Read every block of one slave; a failed block is counted and the cycle's other values kept."""
        from pymodbus import ModbusException

        words: dict[ReadBlock, list[int]] = {}
        stats = device.stats
        for block in device.blocks:
            read = client.read_holding_registers if block.function == 3 else client.read_input_registers
            try:
                response = await read(block.address, count=block.count, device_id=device.slave)
            except ModbusException as exc:
                # pymodbus reports a silent slave as an I/O error once its timeout expires.
                stats.add(
                    "timeout" if "timeout" in str(exc).lower() or "no response" in str(exc).lower() else "io_error"
                )
                continue
            if response.isError():
                stats.add("exception")
                continue
            words[block] = list(response.registers)
        if not words:
            return
        modbus = device.spec.profile.read.modbus
        assert modbus is not None  # checked in __init__
        try:
            samples = decode_registers(modbus, words, stats)
        except ModbusDecodeError as exc:
            stats.add(exc.reason)
            return
        stats.add("frames", len(words))
        self.intake.offer(Chunk(device.spec.device.id, samples, self.clock()))
