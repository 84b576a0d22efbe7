"""`gridwatch demo`: simulated devices → edge agent → MQTT, with a live view and a scripted outage."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from device_profiles import load_profiles
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, resolve_devices
from gateway import topics
from gateway.contract import ContractError, decode_envelope
from gateway.readings import Reading
from gridwatch.broker import Mosquitto, free_port
from simulators.clock import ScenarioClock
from simulators.gnss import GnssSimulator
from simulators.hj212 import Hj212Simulator, Hj212Station
from simulators.modbus import ModbusSimulator, Slave
from simulators.mqtt_sensors import MqttSensorsSimulator, default_sensors
from simulators.scenario import Episode, Ramp, Scenario

GATEWAY = "gw-demo-1"
STATION_MN = "GW0101A0000001"


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What the demo runs and when: its length, and when the upstream broker is pulled and for how long."""

    duration_s: float | None = None
    outage_at_s: float = 45.0
    outage_for_s: float = 20.0
    live: bool = True


def demo_scenario() -> Scenario:
    """Gas rising in a tunnel, a main losing pressure, a tilted cover and a PM2.5 episode, staggered."""
    return Scenario(
        "demo",
        {
            "gas_lel": Ramp(0.0, 60.0, begin=15.0, duration=60.0),
            "pressure": Ramp(0.35, 0.08, begin=25.0, duration=40.0),
            "tilt": Episode(0.8, 35.0, 20.0, 2.0, 30.0, 2.0),
            "pm2_5": Episode(35.0, 250.0, 30.0, 20.0, 40.0, 20.0),
        },
    )


def agent_config(
    workdir: Path, rs485: Path, gnss: Path, field_port: int, upstream_port: int, hj212_port: int
) -> dict[str, Any]:
    """Return the demo gateway's configuration document (the same schema as a field gateway's)."""
    grid = "41010210100101"
    return {
        "gateway": {"id": GATEWAY, "data_dir": str(workdir / "agent")},
        "uplink": {"host": "127.0.0.1", "port": upstream_port, "heartbeat_s": 2, "batch": {"max_age_s": 0.5}},
        "buffer": {"max_bytes": "64MiB"},
        "ports": [
            {"name": "gnss", "path": str(gnss)},
            {"name": "rs485", "path": str(rs485), "serial": {"baudrate": 9600}},
        ],
        "local_broker": {"host": "127.0.0.1", "port": field_port},
        "hj212_listen": {"host": "127.0.0.1", "port": hj212_port},
        "devices": [
            {"id": "gnss-1", "profile": "gnss-nmea", "port": "gnss", "place": {"grid": grid}},
            {
                "id": "pressure-1",
                "profile": "water-pressure-modbus",
                "port": "rs485",
                "slave": 1,
                "interval": "1s",
                "place": {"lat": 34.8012, "lon": 113.5401, "part_id": "4101020101000001", "grid": grid},
            },
            {
                "id": "level-2",
                "profile": "drainage-level-modbus",
                "port": "rs485",
                "slave": 2,
                "interval": "1s",
                "place": {"lat": 34.7990, "lon": 113.5330, "part_id": "4101020201000002", "grid": grid},
            },
            {
                "id": "gas-tunnel-3",
                "profile": "tunnel-gas-modbus",
                "port": "rs485",
                "slave": 3,
                "interval": "1s",
                "place": {"lat": 34.7981, "lon": 113.5312, "part_id": "4101021501000003", "grid": grid},
            },
            {
                "id": "flow-4",
                "profile": "flowmeter-modbus",
                "port": "rs485",
                "slave": 4,
                "interval": "1s",
                "place": {"lat": 34.8020, "lon": 113.5380, "part_id": "4101020105000004", "grid": grid},
            },
            {
                "id": "MH-0001",
                "profile": "manhole-tilt-mqtt",
                "topic": "sensors/MH-0001/data",
                "place": {"lat": 34.7995, "lon": 113.5350, "part_id": "4101020102000012", "grid": grid},
            },
            {
                "id": "TH-0001",
                "profile": "temp-humidity-mqtt",
                "topic": "sensors/TH-0001/data",
                "place": {"grid": grid},
            },
            {
                "id": "air-1",
                "profile": "hj212",
                "mn": STATION_MN,
                "place": {"lat": 34.8000, "lon": 113.5300, "grid": grid},
            },
        ],
    }


@dataclass
class UpstreamView:
    """What arrived upstream (the cloud's side of the broker): readings, alerts and delivery counters."""

    seqs: set[int] = field(default_factory=set)
    readings: int = 0
    duplicates: int = 0
    rejected: int = 0
    latest: dict[tuple[str, str], Reading] = field(default_factory=dict)
    alerts: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    status: dict[str, Any] = field(default_factory=dict)

    async def follow(self, port: int) -> None:
        """Subscribe upstream and account every envelope once (dedup by seq), reconnecting across outages."""
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", port, identifier="demo-cloud", clean_session=False) as client:
                    await client.subscribe(f"gw/{GATEWAY}/#", qos=1)
                    async for message in client.messages:
                        self._account(str(message.topic), message.payload)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.5)

    def _account(self, topic: str, payload: Any) -> None:
        """Apply one message: a status heartbeat, or an envelope applied at most once per seq."""
        if not isinstance(payload, bytes):
            return
        if topic == topics.status(GATEWAY):
            with contextlib.suppress(ContractError):
                env = decode_envelope(payload)
                self.status = env.status or {}
            return
        try:
            env = decode_envelope(payload)
        except ContractError:
            self.rejected += 1
            return
        if env.seq in self.seqs:
            self.duplicates += 1
            return
        self.seqs.add(env.seq)
        self.readings += len(env.readings)
        for reading in env.readings:
            self.latest[(reading.device, reading.quantity)] = reading
        for alert in env.alerts:
            stamp = time.strftime("%H:%M:%S", time.localtime(alert.ts_ms / 1000))
            value = "" if alert.value is None else f" {alert.value:.3g}"
            self.alerts.appendleft(
                f"{stamp} {alert.state.value:<8} L{alert.severity} {alert.device} {alert.rule}{value}"
            )


# Quantities shown in the live table (a device's full set goes upstream regardless).
SHOWN = (
    "latitude",
    "longitude",
    "sats_in_view_beidou",
    "pressure",
    "water_level",
    "gas_lel",
    "flow_rate",
    "tilt",
    "battery",
    "temperature",
    "pm2_5",
    "noise_la",
)


def render(view: UpstreamView, agent: Agent, started: float, phase: str) -> Group:
    """Return the live screen: readings received upstream, alerts, buffer and uplink health."""
    table = Table(title="latest readings received upstream", expand=True)
    for column in ("device", "quantity", "value", "unit", "quality", "age s"):
        table.add_column(column)
    now = time.time() * 1000
    for (device, quantity), r in sorted(view.latest.items()):
        if quantity in SHOWN:
            table.add_row(device, quantity, f"{r.value:.6g}", r.unit, r.quality.value, f"{(now - r.ts_ms) / 1000:.0f}")
    stats = agent.buffer.stats()
    health = agent.health()
    autonomy = health["autonomy_h"]
    uplink = agent.uplink.health()
    lines = [
        f"[bold]{phase}[/bold]   t={time.monotonic() - started:5.0f}s",
        f"uplink: {'[green]connected[/green]' if uplink['connected'] else '[red]down[/red]'}   "
        f"envelopes upstream: {len(view.seqs)}   readings upstream: {view.readings}   "
        f"duplicates dropped: {view.duplicates}",
        f"buffer: {stats.depth_items} items, {stats.depth_bytes / 1024:.0f} KiB   autonomy: "
        f"{'∞' if autonomy is None else f'{autonomy:.1f} h'}   dropped: {dict(stats.dropped) or 0}   "
        f"ingress: {health['ingress_per_s']:.0f} readings/s",
        f"decode errors: {health['decode_errors'] or 'none'}",
    ]
    alerts = Panel("\n".join(view.alerts) or "no alerts yet", title="alerts (newest first)")
    return Group(Panel("\n".join(lines), title=f"gridwatch demo — gateway {GATEWAY}"), table, alerts)


async def run_demo(plan: DemoPlan, console: Console) -> UpstreamView:
    """Run the demo until `plan.duration_s` passes (or forever); return what arrived upstream."""
    with tempfile.TemporaryDirectory(prefix="gridwatch-demo-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            with console.status("starting the field broker and the upstream broker…"):
                field_broker = await stack.enter_async_context(Mosquitto(workdir / "field-broker"))
                upstream = await stack.enter_async_context(Mosquitto(workdir / "upstream-broker"))
            console.print(f"[green]✓[/green] brokers: field :{field_broker.port}, upstream :{upstream.port}")
            scenario, clock = demo_scenario(), ScenarioClock.from_now()
            with console.status("starting simulated devices (GNSS, Modbus line, MQTT sensors)…"):
                gnss = await stack.enter_async_context(GnssSimulator(workdir / "gnss0", rate_hz=1, clock=clock))
                slaves = [
                    Slave.bundled(1, "water-pressure-modbus"),
                    Slave.bundled(2, "drainage-level-modbus"),
                    Slave.bundled(3, "tunnel-gas-modbus"),
                    Slave.bundled(4, "flowmeter-modbus"),
                ]
                line = await stack.enter_async_context(
                    ModbusSimulator(workdir / "rs485", slaves, values=scenario, clock=clock)
                )
                await stack.enter_async_context(
                    MqttSensorsSimulator(
                        "127.0.0.1",
                        field_broker.port,
                        default_sensors(),
                        interval_s=1,
                        values=scenario,
                        clock=clock,
                    )
                )
            console.print(
                "[green]✓[/green] devices: GNSS (GPS+BeiDou) on a pty, 4 Modbus slaves on an RS-485 pty, 2 MQTT sensors"
            )
            hj212_port = free_port()
            document = agent_config(workdir, line.path, gnss.path, field_broker.port, upstream.port, hj212_port)
            config = AgentConfig.model_validate(document)
            agent = Agent(config, resolve_devices(config, load_profiles()))
            agent_task = asyncio.create_task(agent.run(), name="agent")
            stack.push_async_callback(_stop_agent, agent, agent_task)
            view = UpstreamView()
            follower = asyncio.create_task(view.follow(upstream.port), name="upstream view")
            stack.callback(follower.cancel)
            station = Hj212Station(mn=STATION_MN, values=scenario, ack=True)
            await stack.enter_async_context(
                Hj212Simulator(host="127.0.0.1", port=hj212_port, rtd_interval=5, station=station, clock=clock)
            )
            console.print(f"[green]✓[/green] edge agent {GATEWAY} running; HJ 212 station dialled in on :{hj212_port}")
            console.print(
                "scenario: gas rising in a utility tunnel, a main losing pressure, a tilted manhole cover, "
                f"a PM2.5 episode; the upstream broker is pulled at t={plan.outage_at_s:.0f}s "
                f"for {plan.outage_for_s:.0f}s. Ctrl-C stops."
            )
            await _drive(plan, console, view, agent, upstream)
            return view


async def _drive(plan: DemoPlan, console: Console, view: UpstreamView, agent: Agent, upstream: Mosquitto) -> None:
    """Refresh the live view and pull/restore the upstream broker on schedule until the plan ends."""
    started = time.monotonic()
    outage_end = plan.outage_at_s + plan.outage_for_s
    phase = "running"
    live = Live(console=console, refresh_per_second=4, transient=False) if plan.live else None
    with live if live is not None else contextlib.nullcontext():
        while plan.duration_s is None or time.monotonic() - started < plan.duration_s:
            elapsed = time.monotonic() - started
            if phase == "running" and elapsed >= plan.outage_at_s:
                await upstream.stop()
                phase = "UPLINK DOWN — the buffer holds everything"
            elif phase.startswith("UPLINK") and elapsed >= outage_end:
                await upstream.start()
                phase = "uplink back — draining the buffer"
            if live is not None:
                live.update(render(view, agent, started, phase))
            await asyncio.sleep(0.25)


async def _stop_agent(agent: Agent, task: asyncio.Task[None]) -> None:
    """Ask the agent to stop and wait for it (it saves rule state and closes the buffer)."""
    agent.stopping.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
