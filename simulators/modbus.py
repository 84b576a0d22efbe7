"""Modbus RTU slaves on one line: profiles and scenario values in, a real pymodbus server behind a pty out.

The line is a null modem of two pty pairs: pymodbus opens one slave end, the reader opens the other
through a stable symlink, and a relay carries bytes between the masters (where faults are applied).
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simdevice import SimAction

from device_profiles import BUNDLED_DIR, Profile, load_profile
from gateway.aio import cancel_and_wait
from simulators.clock import ScenarioClock
from simulators.errors import SimulatorError
from simulators.faults import Faults
from simulators.modbus_encode import RegisterImage
from simulators.pty import PtyPort
from simulators.scenario import Scenario, scenario
from simulators.stream import FrameStream
from simulators.values import check_scenario, device_values, measures_by_source

# The line the CLI and demo run: one of each bundled Modbus profile, ids 1-4.
DEFAULT_LINE: tuple[tuple[int, str], ...] = (
    (1, "water-pressure-modbus"),
    (2, "drainage-level-modbus"),
    (3, "gas-detector-modbus"),
    (4, "flowmeter-modbus"),
)


@dataclass(slots=True)
class Slave:
    """One slave on the line: its unit id, its profile and (optionally) its decimal places per register."""

    unit_id: int
    profile: Profile
    decimals: dict[str, int] = field(default_factory=dict)

    @classmethod
    def bundled(cls, unit_id: int, profile_name: str, **decimals: int) -> Slave:
        """Build a slave from a bundled profile by name."""
        return cls(unit_id, load_profile(BUNDLED_DIR / f"{profile_name}.yaml"), dict(decimals))


def default_slaves() -> list[Slave]:
    """Return the default line: pressure, drainage level, gas and flow on ids 1-4."""
    return [Slave.bundled(unit_id, name) for unit_id, name in DEFAULT_LINE]


def _sim_device(unit_id: int, image: RegisterImage, action: SimAction) -> SimDevice:
    """Describe one slave's registers to pymodbus: holding (3) and input (4) blocks, read-only."""
    blocks: list[list[SimData]] = []
    for function in (3, 4):
        addresses = sorted(image.function_words(function))
        block = [SimData(a, values=0, datatype=DataType.REGISTERS, readonly=True) for a in addresses]
        # pymodbus needs every block non-empty; an invalid cell answers "illegal address".
        blocks.append(block or [SimData(0, datatype=DataType.INVALID)])
    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    return SimDevice(unit_id, simdata=(bits, list(bits), blocks[0], blocks[1]), action=action)


class ModbusSimulator:
    """Slaves answering a real pymodbus RTU server through a pty published at `link`.

    `async with ModbusSimulator(link=tmp / "rs485", slaves=default_slaves()) as sim:` — then a client
    opens `sim.path` (pymodbus `AsyncModbusSerialClient(str(sim.path), framer=FramerType.RTU)`).
    Register values follow `values` (canonical quantities) through each profile every `update_s`.
    """

    def __init__(
        self,
        link: Path | str,
        slaves: Sequence[Slave] | None = None,
        *,
        values: Scenario | None = None,
        clock: ScenarioClock | None = None,
        faults: Faults | None = None,
        update_s: float = 1.0,
        baudrate: int = 9600,
    ) -> None:
        self.slaves = list(slaves) if slaves is not None else default_slaves()
        ids = [s.unit_id for s in self.slaves]
        if not self.slaves or len(set(ids)) != len(ids) or not all(1 <= i <= 247 for i in ids):
            raise SimulatorError(f"slave ids must be distinct and in 1..247, got {ids}")
        self.values = values or scenario("normal")
        self.images = {s.unit_id: RegisterImage(s.profile, s.decimals) for s in self.slaves}
        self._measures = {}
        for s in self.slaves:
            measures = measures_by_source(s.profile, s.profile.read.source_keys() or ())
            check_scenario(s.profile, measures.values(), self.values)
            self._measures[s.unit_id] = measures
        self.clock = clock or ScenarioClock.from_now()
        self.faults = faults or Faults()
        self.update_s = update_s
        self.baudrate = baudrate
        self.port = PtyPort(link)
        self.stream = FrameStream(self.port, self.faults, binary=True)
        self.requests = 0
        self.requests_lost = 0
        self.requests_unanswered = 0
        self._server_dir: Path | None = None
        self._server_port: PtyPort | None = None
        self._server: ModbusSerialServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def path(self) -> Path:
        """Return the stable path a Modbus master opens."""
        return self.port.link

    def update(self, t: float) -> None:
        """Re-encode every slave's registers for scenario time `t`."""
        for unit_id, image in self.images.items():
            image.update(device_values(self._measures[unit_id], self.values, t, self.faults))

    async def _serve(
        self,
        unit_id: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Copy the slave's current words into pymodbus's block before it answers a read."""
        for addr, word in self.images[unit_id].function_words(function_code).items():
            index = addr - start_address
            if 0 <= index < len(registers):
                registers[index] = word
        return None

    async def _run_clock(self) -> None:
        async for t in self.clock.ticks(self.update_s):
            self.stream.tick(t, self.update_s)
            self.update(t)

    async def _relay_requests(self, server_port: PtyPort) -> None:
        """Carry the master's requests to the server; a silent line swallows them."""
        while True:
            data = await self.port.read()
            if not data:
                continue
            self.requests += 1
            if self.stream.outage is not None:
                self.requests_lost += 1
                continue
            # On RS-485 nobody answers an absent id; pymodbus 3.16 would answer with an exception
            # (its SimCore raises KeyError, not NoSuchIdException), so such requests stop here.
            if data[0] not in self.images:
                self.requests_unanswered += 1
                continue
            server_port.write(data)

    async def _relay_responses(self, server_port: PtyPort) -> None:
        """Carry the server's responses back through the frame faults."""
        while True:
            data = await server_port.read()
            if data:
                self.stream.send([data])

    async def __aenter__(self) -> Self:
        self.update(0.0)
        self._server_dir = Path(tempfile.mkdtemp(prefix="gridwatch-modbus-"))
        server_port = self._server_port = PtyPort(self._server_dir / "server", hold_peer=True)
        server_port.open()
        self.port.open()
        # pymodbus calls the action before each answer: the one place its callback style is let in.
        devices = [
            _sim_device(unit_id, image, functools.partial(self._serve, unit_id))
            for unit_id, image in self.images.items()
        ]
        self._server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=server_port.device,
            baudrate=self.baudrate,
            ignore_missing_devices=True,
        )
        await self._server.serve_forever(background=True)
        self._tasks = [
            asyncio.create_task(self._run_clock(), name="modbus clock"),
            asyncio.create_task(self._relay_requests(server_port), name="modbus requests"),
            asyncio.create_task(self._relay_responses(server_port), name="modbus responses"),
        ]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._tasks)
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
        if self._server_port is not None:
            self._server_port.close()
        self.port.close()
        if self._server_dir is not None:
            shutil.rmtree(self._server_dir, ignore_errors=True)
