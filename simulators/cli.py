"""`gridwatch simulate …`: command-line options in; a running simulator, its port path on stdout first."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from simulators.clock import ScenarioClock
from simulators.errors import SimulatorError
from simulators.faults import Faults, parse_faults
from simulators.gnss import GnssReceiver, GnssSimulator, LoopTrack
from simulators.hj212 import DEFAULT_CODES, Hj212Simulator, Hj212Station
from simulators.hj212_encode import CRC_MODES, CrcMode
from simulators.modbus import ModbusSimulator, default_slaves
from simulators.mqtt_sensors import MqttSensorsSimulator
from simulators.scenario import SCENARIOS, Scenario, scenario

simulate_app = typer.Typer(
    help="Simulated field devices speaking real wire formats over pseudo-terminals, TCP and MQTT.",
    no_args_is_help=True,
)

T = TypeVar("T")
_DEFAULT_DIR = Path(tempfile.gettempdir()) / "gridwatch"

FaultsOpt = Annotated[
    str,
    typer.Option("--faults", help="Fault rates, e.g. garbage=0.01,checksum=0.02,unplug=0.001,unplug_for=5"),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the fault random generator.")]
ScenarioOpt = Annotated[str, typer.Option("--scenario", help=f"Value scenario: {', '.join(SCENARIOS)}.")]
BeginOpt = Annotated[float, typer.Option("--begin", help="Scenario seconds before the event starts.")]
DurationOpt = Annotated[float, typer.Option("--duration", help="Seconds the scenario event lasts.")]
SpeedOpt = Annotated[float, typer.Option("--speed", help="Scenario seconds per wall second.")]


def _faults(spec: str, seed: int) -> Faults:
    return Faults(parse_faults(spec), random.Random(seed))


def _scenario(name: str, begin: float, duration: float) -> Scenario:
    return scenario(name, begin=begin, duration=duration)


async def _serve(sim: AbstractAsyncContextManager[object], banner: str) -> None:
    """Enter the simulator, print where it serves (first line of stdout), run until cancelled."""
    async with sim:
        print(banner, flush=True)
        await asyncio.Event().wait()


def _run(main: Coroutine[Any, Any, None], report: Callable[[], str]) -> None:
    """Run `main` until Ctrl-C or SIGTERM, then close the simulator and print its counters on stderr."""

    async def supervised() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main

    try:
        asyncio.run(supervised())
    except SimulatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"stopped: {report()}", err=True)


def _guard(build: Callable[[], T]) -> T:
    """Build a simulator, turning configuration errors into a clear message and exit status 2."""
    try:
        return build()
    except (SimulatorError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@simulate_app.command()
def gnss(
    link: Annotated[Path, typer.Option("--link", help="Symlink to publish the pty at.")] = _DEFAULT_DIR / "gnss0",
    rate: Annotated[float, typer.Option("--rate", help="Epochs per second (1-10).")] = 1.0,
    speed_mps: Annotated[float, typer.Option("--speed-mps", help="Speed along the loop track.")] = 5.0,
    radius_m: Annotated[float, typer.Option("--radius-m", help="Radius of the loop track.")] = 300.0,
    lat: Annotated[float, typer.Option("--lat", help="Latitude of the loop centre.")] = 34.80,
    lon: Annotated[float, typer.Option("--lon", help="Longitude of the loop centre.")] = 113.53,
    sentences: Annotated[str, typer.Option("--sentences", help="Sentence types.")] = "RMC,GGA,GSA,GSV,ZDA",
    faults: FaultsOpt = "",
    seed: SeedOpt = 0,
    speed: SpeedOpt = 1.0,
) -> None:
    """Run a GPS + BeiDou receiver sending NMEA 4.11 on a pty."""
    sim = _guard(
        lambda: GnssSimulator(
            link,
            rate_hz=rate,
            clock=ScenarioClock.from_now(speed),
            receiver=GnssReceiver(
                LoopTrack(lat, lon, radius_m, speed_mps), [s.strip().upper() for s in sentences.split(",")]
            ),
            faults=_faults(faults, seed),
        )
    )
    _run(
        _serve(sim, str(link)),
        lambda: f"epochs={sim.epochs} {sim.port.stats} faults={dict(sim.faults.counts)}",
    )


@simulate_app.command()
def hj212(
    link: Annotated[Path | None, typer.Option("--link", help="Symlink to publish a pty at.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Platform host to dial (TCP).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Platform port to dial (TCP).")] = None,
    interval: Annotated[int, typer.Option("--interval", help="Seconds between CN 2011 real-time frames.")] = 30,
    crc: Annotated[str, typer.Option("--crc", help=f"CRC mode: {', '.join(CRC_MODES)}.")] = "hj212",
    ack: Annotated[bool, typer.Option("--ack/--no-ack", help="Ask the platform for a CN 9014 reply.")] = False,
    mn: Annotated[str, typer.Option("--mn", help="Station MN.")] = "GW0101A0000001",
    pw: Annotated[str, typer.Option("--pw", help="Station password.")] = "123456",
    codes: Annotated[str, typer.Option("--codes", help="Pollutant codes.")] = ",".join(DEFAULT_CODES),
    scenario_name: ScenarioOpt = "normal",
    begin: BeginOpt = 10.0,
    duration: DurationOpt = 120.0,
    faults: FaultsOpt = "",
    seed: SeedOpt = 0,
    speed: SpeedOpt = 1.0,
) -> None:
    """Run an HJ 212-2017 air station on a pty (--link) or dialling a platform (--host/--port)."""
    if crc not in CRC_MODES:
        typer.echo(f"error: --crc must be one of {', '.join(CRC_MODES)}", err=True)
        raise typer.Exit(2)
    crc_mode: CrcMode = crc
    if link is None and host is None:
        link = _DEFAULT_DIR / "hj212-0"
    fault_state = _guard(lambda: _faults(faults, seed))
    sim = _guard(
        lambda: Hj212Simulator(
            link=link,
            host=host,
            port=port,
            rtd_interval=interval,
            clock=ScenarioClock.from_now(speed),
            faults=fault_state,
            station=Hj212Station(
                mn=mn,
                pw=pw,
                codes=[c.strip() for c in codes.split(",") if c.strip()],
                values=_scenario(scenario_name, begin, duration),
                crc_mode=crc_mode,
                ack=ack,
                faults=fault_state,
            ),
        )
    )
    where = str(link) if link is not None else f"tcp://{host}:{port}"
    _run(
        _serve(sim, where),
        lambda: (
            f"realtime={sim.realtime_frames} minute={sim.minute_frames} {sim.replies} faults={dict(sim.faults.counts)}"
        ),
    )


@simulate_app.command()
def modbus(
    link: Annotated[Path, typer.Option("--link", help="Symlink to publish the RS-485 line at.")] = _DEFAULT_DIR
    / "rs485-0",
    interval: Annotated[float, typer.Option("--interval", help="Seconds between register updates.")] = 1.0,
    scenario_name: ScenarioOpt = "normal",
    begin: BeginOpt = 10.0,
    duration: DurationOpt = 120.0,
    faults: FaultsOpt = "",
    seed: SeedOpt = 0,
    speed: SpeedOpt = 1.0,
) -> None:
    """Run Modbus RTU slaves (1 pressure, 2 drainage level, 3 gas, 4 flowmeter) on a pty line."""
    sim = _guard(
        lambda: ModbusSimulator(
            link,
            default_slaves(),
            values=_scenario(scenario_name, begin, duration),
            clock=ScenarioClock.from_now(speed),
            faults=_faults(faults, seed),
            update_s=interval,
        )
    )
    _run(
        _serve(sim, str(link)),
        lambda: f"requests={sim.requests} lost={sim.requests_lost} faults={dict(sim.faults.counts)}",
    )


@simulate_app.command()
def mqtt(
    host: Annotated[str, typer.Option("--host", help="Broker host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Broker port.")] = 1883,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between messages.")] = 5.0,
    scenario_name: ScenarioOpt = "normal",
    begin: BeginOpt = 10.0,
    duration: DurationOpt = 120.0,
    faults: FaultsOpt = "",
    seed: SeedOpt = 0,
    speed: SpeedOpt = 1.0,
) -> None:
    """Run MQTT JSON sensors (manhole tilt MH-0001, temperature/humidity TH-0001)."""
    sim = _guard(
        lambda: MqttSensorsSimulator(
            host,
            port,
            interval_s=interval,
            values=_scenario(scenario_name, begin, duration),
            clock=ScenarioClock.from_now(speed),
            faults=_faults(faults, seed),
        )
    )
    _run(
        _serve(sim, f"mqtt://{host}:{port}/sensors/+/data"),
        lambda: f"published={sim.published} lost={sim.lost_in_outage} faults={dict(sim.faults.counts)}",
    )


if __name__ == "__main__":
    simulate_app(sys.argv[1:])
