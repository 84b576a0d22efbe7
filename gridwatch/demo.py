"""`gridwatch demo`: the whole system on one machine — five simulated gateways, their agents, the cloud, a scenario."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from cloud.api import create_app
from cloud.fleet import Link, fleet_view
from cloud.grid import default_district
from cloud.incidents.roles import Actor
from cloud.incidents.store import CaseFilter
from cloud.ingest import IngestSettings
from cloud.registry import Device
from cloud.service import CloudService, wall_ms
from cloud.settings import CloudSettings
from device_profiles import load_profiles
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, resolve_devices
from gateway.broker_auth import BrokerAuthError
from gridwatch.broker import MOSQUITTO, Amqtt, BrokerError, BrokerProcess, Mosquitto, free_port
from simulators.clock import ScenarioClock
from simulators.gnss import GnssReceiver, GnssSimulator, LoopTrack
from simulators.hj212 import Hj212Simulator, Hj212Station
from simulators.modbus import ModbusSimulator, Slave
from simulators.mqtt_sensors import MqttSensor, MqttSensorsSimulator
from simulators.relay import TcpRelay
from simulators.scenario import Episode, Ramp, Scenario, ValueSource

DISTRICT_SCOPE = "410102"
PASSWORD = "demo"
INGEST_PASSWORD = "demo-ingest-secret"
FALLBACK = "mosquitto not available: using the embedded amqtt broker (MQTT 3.1.1, ~2k msg/s)"


class BrokerChoice(StrEnum):
    """Which MQTT broker the demo runs: mosquitto if it starts (else amqtt), or one of them only."""

    AUTO = "auto"
    MOSQUITTO = "mosquitto"
    AMQTT = "amqtt"


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: Ctrl-C must stop the whole demo, not only the API."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave SIGINT to asyncio.run, which cancels the demo and unwinds everything in order."""
        yield


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """How long the demo runs, where the cloud listens, and when each scripted event happens."""

    duration_s: float | None = None
    port: int = 8000
    scenario_at_s: float = 20.0
    outage_at_s: float = 60.0
    outage_for_s: float = 30.0
    live: bool = True
    broker: BrokerChoice = BrokerChoice.AUTO
    # The mosquitto binary to try (a test points it at a missing one to exercise the fallback).
    mosquitto: str = MOSQUITTO


@dataclass(frozen=True, slots=True)
class GatewaySite:
    """One simulated gateway: its office, home grid and position, and what happens around it."""

    index: int
    gateway: str
    office: str
    office_name: str
    grid: str
    lat: float
    lon: float
    story: str


STORIES = (
    "gas rising in a utility tunnel",
    "a main losing pressure",
    "a tilted manhole cover",
    "a PM2.5 episode",
    "the uplink lost and caught up",
)


def sites() -> list[GatewaySite]:
    """Place one gateway in the first grid of each office; its devices sit around the grid's inner point."""
    district = default_district()
    out = []
    for index, office in enumerate(district.offices, start=1):
        grid = min(district.grids_in(office.code), key=lambda g: g.code)
        point = grid.polygon.representative_point()
        out.append(
            GatewaySite(
                index,
                f"gw-{office.code[-3:]}",
                office.code,
                office.name,
                grid.code,
                point.y,
                point.x,
                STORIES[index - 1],
            )
        )
    return out


def scenario(site: GatewaySite, at: float) -> Scenario:
    """The events around one gateway (values in canonical units, time from the demo's start)."""
    sources: dict[str, ValueSource] = {}
    if site.index == 1:
        sources["gas_lel"] = Ramp(0.0, 60.0, begin=at, duration=60.0)
    elif site.index == 2:
        sources["pressure"] = Ramp(0.35, 0.08, begin=at, duration=40.0)
    elif site.index == 3:
        sources["tilt"] = Episode(0.8, 35.0, at, 2.0, 60.0, 2.0)
    elif site.index == 4:
        sources["pm2_5"] = Episode(35.0, 250.0, at, 20.0, 60.0, 20.0)
    return Scenario(f"demo-{site.index}", sources)


def devices(site: GatewaySite) -> list[dict[str, Any]]:
    """The gateway's devices as agent entries, each placed (lat/lon, part id, grid) near the gateway."""
    n = site.index

    def place(k: int, major: str, minor: str) -> dict[str, Any]:
        offset = 0.0002 * (k - 3)
        return {
            "lat": round(site.lat + offset, 6),
            "lon": round(site.lon - offset, 6),
            "part_id": f"410102{major}{minor}{n:03d}{k:03d}",
            "grid": site.grid,
        }

    return [
        {"id": f"gnss-{n}", "profile": "gnss-nmea", "port": "gnss", "place": {"grid": site.grid}},
        {
            "id": f"pressure-{n}",
            "profile": "water-pressure-modbus",
            "port": "rs485",
            "slave": 1,
            "interval": "2s",
            "place": place(1, "01", "01"),
        },
        {
            "id": f"level-{n}",
            "profile": "drainage-level-modbus",
            "port": "rs485",
            "slave": 2,
            "interval": "2s",
            "place": place(2, "02", "03"),
        },
        {
            "id": f"gas-{n}",
            "profile": "tunnel-gas-modbus",
            "port": "rs485",
            "slave": 3,
            "interval": "2s",
            "place": place(3, "15", "01"),
        },
        {
            "id": f"flow-{n}",
            "profile": "flowmeter-modbus",
            "port": "rs485",
            "slave": 4,
            "interval": "2s",
            "place": place(4, "01", "05"),
        },
        {
            "id": f"MH-{n}",
            "profile": "manhole-tilt-mqtt",
            "topic": f"sensors/MH-{n}/data",
            "place": place(5, "01", "02"),
        },
        {
            "id": f"TH-{n}",
            "profile": "temp-humidity-mqtt",
            "topic": f"sensors/TH-{n}/data",
            "place": place(6, "08", "01"),
        },
        {"id": f"air-{n}", "profile": "hj212", "mn": f"GW0101A00000{n:02d}", "place": place(7, "08", "02")},
    ]


def gateway_document(
    site: GatewaySite, workdir: Path, uplink_port: int, field_port: int, hj212_port: int, gnss: Path, rs485: Path
) -> dict[str, Any]:
    """The gateway's agent configuration (the schema a field gateway runs; credentials come from enrolment)."""
    return {
        "gateway": {"id": site.gateway, "data_dir": str(workdir / site.gateway)},
        "uplink": {
            "host": "127.0.0.1",
            "port": uplink_port,
            "heartbeat_s": 2,
            "batch": {"max_age_s": 0.5},
            "backoff_max_s": 2,
        },
        "buffer": {"max_bytes": "64MiB"},
        "ports": [{"name": "gnss", "path": str(gnss)}, {"name": "rs485", "path": str(rs485)}],
        "local_broker": {"host": "127.0.0.1", "port": field_port},
        "hj212_listen": {"host": "127.0.0.1", "port": hj212_port},
        "devices": devices(site),
    }


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What the demo reached, taken just before it stops."""

    online: frozenset[str]
    readings: int
    cases: int
    open_cases: int
    uplink_cuts: int


@dataclass
class DemoState:
    """What the demo has started and what it shows."""

    service: CloudService
    sites: list[GatewaySite]
    agents: dict[str, Agent] = field(default_factory=dict)
    relays: dict[str, TcpRelay] = field(default_factory=dict)
    phase: str = "starting"
    report: DemoReport | None = None

    def snapshot(self) -> DemoReport:
        """Take the report: gateways online, readings stored, cases opened, uplink cuts."""
        rows = fleet_view(self.service.registry, self.service.liveness)
        system = Actor.system("demo")
        return DemoReport(
            online=frozenset(r.gateway for r in rows if r.link is Link.ONLINE),
            readings=sum(w.counters.readings for w in self.service.workers),
            cases=self.service.incidents.count(system),
            open_cases=self.service.incidents.count(system, CaseFilter(open_only=True)),
            uplink_cuts=sum(r.cuts for r in self.relays.values()),
        )


async def _users(service: CloudService, grids: Sequence[str]) -> None:
    """Create the demo logins: the command center, one worker per grid, one handler per department."""
    now = wall_ms()

    def create() -> None:
        users = [("command", "shift_lead", DISTRICT_SCOPE), ("leader", "leader", DISTRICT_SCOPE)]
        users.append(("ops", "maintenance", DISTRICT_SCOPE))
        users += [(f"dept-{d.code}", "dept_handler", d.code) for d in service.directory.departments]
        users += [(f"grid-{grid}", "grid_worker", grid) for grid in grids]
        service.auth.ensure_users(users, PASSWORD, now)

    # One argon2 hash for all (they share the printed password), off the event loop.
    await asyncio.to_thread(create)


def _enrol(service: CloudService, site: GatewaySite) -> tuple[str, str]:
    """Register, bind devices and enrol one gateway in-process (what `gateway register` + `agent enroll` do)."""
    registry = service.registry
    now = wall_ms()
    gateway, token = registry.register_gateway(site.gateway, site.office_name, now)
    for entry in devices(site):
        place = entry["place"]
        settings = {k: v for k, v in entry.items() if k not in ("id", "profile", "place")}
        registry.bind_device(
            Device(
                id=entry["id"],
                gateway=gateway.id,
                profile=entry["profile"],
                part_id=place.get("part_id"),
                lat=place.get("lat"),
                lon=place.get("lon"),
                grid=place.get("grid"),
                settings=settings,
            ),
            now,
        )
    creds = registry.enrol(token.token, now, agent_version="demo", hostname="demo")
    service.liveness.bind_devices(registry.devices(gateway.id))
    return creds.username, creds.password


async def start_brokers(
    stack: contextlib.AsyncExitStack, plan: DemoPlan, workdir: Path, console: Console
) -> tuple[BrokerProcess, BrokerProcess]:
    """Start the field's and the district's broker: mosquitto, or amqtt when mosquitto is missing or fails."""
    if plan.broker is not BrokerChoice.AMQTT:
        try:
            with console.status("starting brokers (the field's and the district's)…"):
                return await _start_mosquitto(stack, plan, workdir)
        except BrokerError as exc:
            if plan.broker is BrokerChoice.MOSQUITTO:
                raise
            console.print(FALLBACK, highlight=False)
            if os.access(plan.mosquitto, os.X_OK):
                # It is installed but would not start: say why, below the one line that matters.
                console.print(f"  [dim]({exc})[/dim]", highlight=False)
    with console.status("starting the embedded amqtt brokers (the field's and the district's)…"):
        field_broker = await stack.enter_async_context(Amqtt(workdir / "field-broker"))
        # Named clients only (every district client has an account): amqtt keeps the ingest worker's
        # persistent session and queues its messages only for clients that are not anonymous.
        upstream = await stack.enter_async_context(Amqtt(workdir / "district-broker", anonymous=False))
    return field_broker, upstream


async def _start_mosquitto(
    stack: contextlib.AsyncExitStack, plan: DemoPlan, workdir: Path
) -> tuple[BrokerProcess, BrokerProcess]:
    """Start both mosquittos (stopped with `stack`), or stop what started and raise BrokerError saying why."""
    if not os.access(plan.mosquitto, os.X_OK):
        raise BrokerError(f"no executable {plan.mosquitto}")
    async with contextlib.AsyncExitStack() as inner:
        try:
            field_broker = await inner.enter_async_context(Mosquitto(workdir / "field-broker", binary=plan.mosquitto))
            upstream = await inner.enter_async_context(
                Mosquitto(
                    workdir / "district-broker", auth=True, users={"ingest": INGEST_PASSWORD}, binary=plan.mosquitto
                )
            )
        except (BrokerError, BrokerAuthError, OSError) as exc:
            # The first line only: the rest is the broker's log, which the demo's user need not read.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BrokerError(reason) from exc
        stack.push_async_callback(inner.pop_all().aclose)
    return field_broker, upstream


def cloud_document(plan: DemoPlan, workdir: Path, upstream: BrokerProcess) -> dict[str, Any]:
    """The cloud's settings for the district broker: mosquitto's managed accounts, or amqtt's open door."""
    document: dict[str, Any] = {
        "data_dir": str(workdir / "cloud"),
        "port": plan.port,
        "gateway_broker": {"host": "127.0.0.1", "port": upstream.port},
        "admin_password": PASSWORD,
        "liveness": {"heartbeat_window_s": 8, "device_window_s": 120},
    }
    ingest = {
        "host": "127.0.0.1",
        "port": upstream.port,
        "username": "ingest",
        "password": INGEST_PASSWORD,
        "client_id": "demo-ingest",
    }
    if isinstance(upstream, Mosquitto):
        pid_file = workdir / "mosquitto.pid"
        pid_file.write_text(str(upstream.pid), encoding="utf-8")
        document["broker_admin"] = {"password_file": str(upstream.files.password_file), "pid_file": str(pid_file)}
    else:
        # amqtt accepts any client: no broker accounts to manage (BrokerSync off, enrolment still issues
        # credentials), MQTT 3.1.1 and no $share, so one ingest worker on a plain subscription.
        ingest |= {"protocol": "3.1.1", "group": None}
        document["ingest_workers"] = 1
    document["ingest"] = IngestSettings.model_validate(ingest)
    return document


async def run_demo(plan: DemoPlan, console: Console) -> DemoState:
    """Run the whole system until `plan.duration_s` passes (or forever); return what it reached."""
    with tempfile.TemporaryDirectory(prefix="gridwatch-demo-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            field_broker, upstream = await start_brokers(stack, plan, workdir, console)
            settings = CloudSettings.model_validate(cloud_document(plan, workdir, upstream))
            with console.status("starting the cloud (API, ingest, incidents) with the default district…"):
                service = CloudService(settings)
                stack.callback(service.close)
                server = EmbeddedServer(
                    uvicorn.Config(create_app(service), host="127.0.0.1", port=plan.port, log_level="warning")
                )
                serving = asyncio.create_task(server.serve(), name="api")
                while not server.started:
                    if serving.done():
                        serving.result()
                        raise RuntimeError(f"the API did not start on port {plan.port}")
                    await asyncio.sleep(0.05)
                stack.push_async_callback(_stop_server, server, serving)
            console.print(
                f"[green]✓[/green] cloud on http://127.0.0.1:{plan.port}  ({upstream.name} brokers "
                f":{field_broker.port}, :{upstream.port})"
            )
            state = DemoState(service, sites())
            with console.status("creating demo logins (command center, 189 grid workers, departments)…"):
                await _users(service, [g.code for g in default_district().grids])
            clock = ScenarioClock.from_now()
            profiles = load_profiles()
            for site in state.sites:
                with console.status(f"starting gateway {site.gateway} ({site.office_name}) and its devices…"):
                    await _start_gateway(stack, state, site, workdir, field_broker, upstream, clock, plan, profiles)
                console.print(f"[green]✓[/green] {site.gateway} in grid {site.grid} ({site.office_name}): {site.story}")
            console.print(
                f"\n[bold]open http://127.0.0.1:{plan.port}[/bold]  — logins (password [bold]{PASSWORD}[/bold]): "
                f"command center [bold]command[/bold]; grid workers [bold]grid-<grid code>[/bold], e.g. "
                f"grid-{state.sites[0].grid}; departments dept-<code>; API docs /docs.  Ctrl-C stops.\n"
            )
            try:
                await _drive(plan, console, state)
            finally:
                state.report = state.snapshot()
            return state


async def _start_gateway(
    stack: contextlib.AsyncExitStack,
    state: DemoState,
    site: GatewaySite,
    workdir: Path,
    field_broker: BrokerProcess,
    upstream: BrokerProcess,
    clock: ScenarioClock,
    plan: DemoPlan,
    profiles: Any,
) -> None:
    """Enrol one gateway, start its simulated devices and its agent (behind a cuttable uplink)."""
    username, password = _enrol(state.service, site)
    values = scenario(site, plan.scenario_at_s)
    receiver = GnssReceiver(LoopTrack(center_lat=site.lat, center_lon=site.lon, radius_m=60.0, speed_mps=2.0))
    gnss = await stack.enter_async_context(
        GnssSimulator(workdir / f"gnss-{site.index}", rate_hz=1, clock=clock, receiver=receiver)
    )
    slaves = [
        Slave.bundled(1, "water-pressure-modbus"),
        Slave.bundled(2, "drainage-level-modbus"),
        Slave.bundled(3, "tunnel-gas-modbus"),
        Slave.bundled(4, "flowmeter-modbus"),
    ]
    line = await stack.enter_async_context(
        ModbusSimulator(workdir / f"rs485-{site.index}", slaves, values=values, clock=clock)
    )
    sensors = [
        MqttSensor.bundled(f"MH-{site.index}", "manhole-tilt-mqtt"),
        MqttSensor.bundled(f"TH-{site.index}", "temp-humidity-mqtt"),
    ]
    await stack.enter_async_context(
        MqttSensorsSimulator("127.0.0.1", field_broker.port, sensors, interval_s=2, values=values, clock=clock)
    )
    relay = await stack.enter_async_context(TcpRelay("127.0.0.1", upstream.port))
    state.relays[site.gateway] = relay
    hj212_port = free_port()
    document = gateway_document(site, workdir, relay.port, field_broker.port, hj212_port, gnss.path, line.path)
    document["uplink"] |= {"username": username, "password": password}
    if not upstream.mqtt5:
        document["uplink"]["protocol"] = "3.1.1"
    config = AgentConfig.model_validate(document)
    agent = Agent(config, resolve_devices(config, profiles))
    state.agents[site.gateway] = agent
    task = asyncio.create_task(agent.run(), name=f"agent {site.gateway}")
    stack.push_async_callback(_stop_agent, agent, task)
    station = Hj212Station(mn=f"GW0101A00000{site.index:02d}", values=values, ack=True)
    await stack.enter_async_context(
        Hj212Simulator(host="127.0.0.1", port=hj212_port, rtd_interval=10, station=station, clock=clock)
    )


async def _drive(plan: DemoPlan, console: Console, state: DemoState) -> None:
    """Refresh the status view and cut the fifth gateway's uplink on schedule until the plan ends."""
    started = time.monotonic()
    cut_site = state.sites[-1]
    state.phase = "running"
    live = Live(console=console, refresh_per_second=2, transient=False) if plan.live else None
    with live if live is not None else contextlib.nullcontext():
        while plan.duration_s is None or time.monotonic() - started < plan.duration_s:
            elapsed = time.monotonic() - started
            if state.phase == "running" and elapsed >= plan.outage_at_s:
                state.relays[cut_site.gateway].cut(plan.outage_for_s)
                state.phase = (
                    f"{cut_site.gateway} uplink cut for {plan.outage_for_s:.0f}s — its buffer holds everything"
                )
            elif state.phase.endswith("holds everything") and elapsed >= plan.outage_at_s + plan.outage_for_s:
                state.phase = f"{cut_site.gateway} uplink back — catching up"
            if live is not None:
                live.update(render(state, elapsed))
            await asyncio.sleep(0.5)


def render(state: DemoState, elapsed: float) -> Group:
    """Return the status screen: gateways, ingest and cases."""
    service = state.service
    table = Table(title="gateways", expand=True)
    for column in ("gateway", "office", "link", "buffer items", "autonomy h", "story"):
        table.add_column(column)
    rows = {row.gateway: row for row in fleet_view(service.registry, service.liveness)}
    for site in state.sites:
        row = rows.get(site.gateway)
        agent = state.agents.get(site.gateway)
        depth = agent.buffer.stats().depth_items if agent is not None else 0
        autonomy = agent.health()["autonomy_h"] if agent is not None else None
        table.add_row(
            site.gateway,
            site.office_name,
            row.link.value if row else "?",
            str(depth),
            "∞" if autonomy is None else f"{autonomy:.1f}",
            site.story,
        )
    system = Actor.system("demo")
    open_cases = service.incidents.count(system, CaseFilter(open_only=True))
    readings = sum(w.counters.readings for w in service.workers)
    lines = [
        f"[bold]{state.phase}[/bold]   t={elapsed:4.0f}s",
        f"readings stored: {readings}   open cases: {open_cases}   all cases: {service.incidents.count(system)}",
    ]
    return Group(Panel("\n".join(lines), title="gridwatch demo"), table)


async def _stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Stop the API server."""
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _stop_agent(agent: Agent, task: asyncio.Task[None]) -> None:
    """Ask an agent to stop and wait for it (it saves rule state and closes its buffer)."""
    agent.stopping.set()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(task, timeout=10)
