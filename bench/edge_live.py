"""Edge bench parts with a real agent process: RSS under a simulated fleet; one MQTT message per reading."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import edge_fleet as fleet
import edge_procs as procs
import yaml

from gridwatch.broker import Mosquitto, free_port
from simulators.gnss import GnssSimulator
from simulators.hj212 import Hj212Simulator, Hj212Station
from simulators.modbus import ModbusSimulator, Slave
from simulators.mqtt_sensors import MqttSensor, MqttSensorsSimulator

# A one-quantity JSON sensor, so that one MQTT message is one reading on both sides of the agent.
BENCH_PROFILE = """
name: bench-temp-mqtt
description: Bench temperature sensor, one reading per MQTT message.
read:
  transport: mqtt
  decoder: json
  json:
    fields: {temperature: temperature}
    time_field: t
    time_format: epoch_ms
measures:
  - {source: temperature, quantity: temperature, unit: degC, valid_range: [-40, 80]}
rules:
  - name: too_hot
    kind: threshold
    quantity: temperature
    levels: [{severity: 1, above: 60}]
    for: 10s
"""
SENSORS = 20
# A step keeps pace when its last reading arrives upstream within this long after the last publish.
PACE_S = 1.0


def write_config(path: Path, doc: dict[str, Any] | str) -> Path:
    """Write a YAML document (or YAML text) to `path`, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


async def rss(tmp: Path, settle_s: float) -> dict[str, Any]:
    """Run an agent with 200 simulated devices for `settle_s` under load; return its RSS."""
    mix = fleet.Mix(mqtt=150, modbus=16, gnss=4, hj212=30)
    load = fleet.Cadence(modbus=5.0, mqtt=1.0, gnss=1.0, hj212=5.0)
    hj_port = free_port()
    async with Mosquitto(tmp / "field") as field, Mosquitto(tmp / "upstream") as upstream:
        devices = fleet.device_docs(mix, load, modbus_lines=2)
        lines: dict[str, list[Slave]] = defaultdict(list)
        for doc in devices["devices"]:
            if doc["profile"] in fleet.MODBUS_PROFILES:
                lines[doc["port"]].append(Slave.bundled(doc["slave"], doc["profile"]))
        async with contextlib.AsyncExitStack() as stack:
            paths: dict[str, Path] = {}
            for port, slaves in lines.items():
                sim = await stack.enter_async_context(ModbusSimulator(tmp / port, slaves))
                paths[port] = sim.path
            for k in range(mix.gnss):
                gnss = await stack.enter_async_context(GnssSimulator(tmp / f"gnss-{k}", rate_hz=1 / load.gnss))
                paths[f"gnss-{k}"] = gnss.path
            for port in devices["ports"]:
                port["path"] = str(paths[port["name"]])
            config = write_config(
                tmp / "agent.yaml",
                {
                    "gateway": {"id": fleet.GATEWAY, "data_dir": str(tmp / "agent-data")},
                    "uplink": {"port": upstream.port, "heartbeat_s": 5, "batch": {"max_age_s": 0.5}},
                    "local_broker": {"port": field.port},
                    "hj212_listen": {"host": "127.0.0.1", "port": hj_port},
                    **devices,
                },
            )
            sensors = [
                MqttSensor.bundled(doc["id"], doc["profile"])
                for doc in devices["devices"]
                if doc["profile"] in fleet.MQTT_PROFILES
            ]
            async with (
                procs.counter(upstream.port, f"gw/{fleet.GATEWAY}/telemetry") as sub,
                procs.agent(config, tmp / "agent.log") as agent,
            ):
                await stack.enter_async_context(
                    MqttSensorsSimulator("127.0.0.1", field.port, sensors, interval_s=load.mqtt)
                )
                for i in range(mix.hj212):
                    station = Hj212Station(mn=fleet.mn(i))
                    await stack.enter_async_context(
                        Hj212Simulator(host="127.0.0.1", port=hj_port, rtd_interval=load.hj212, station=station)
                    )
                started = time.monotonic()
                await asyncio.sleep(settle_s)
                if agent.returncode is not None:
                    raise RuntimeError(f"agent exited: {(tmp / 'agent.log').read_text()}")
                rss_kb = procs.status_kb(agent.pid, "VmRSS")
                hwm_kb = procs.status_kb(agent.pid, "VmHWM")
                cpu = procs.cpu_s(agent.pid)
                seconds = time.monotonic() - started
                got = await sub.report()
    kinds = f"{mix.mqtt} MQTT, {mix.hj212} HJ 212 TCP, {mix.modbus} Modbus RTU on 2 ptys, {mix.gnss} NMEA ptys"
    return {
        "devices": mix.total,
        "mix": kinds,
        "seconds": seconds,
        "rss_mb": rss_kb / 1024,
        "hwm_mb": hwm_kb / 1024,
        "cpu_s": cpu,
        "readings": got["unique"],
    }


@dataclass(slots=True)
class Step:
    """One rate step of the one-message-per-reading run."""

    who: str
    rate: int
    sent: int
    publish_rate: float
    arrived: int
    doubled: int
    resent_seqs: int
    lag_s: float
    delivered_rate: float
    cpu_us: float
    machine_busy: float
    harness_us: float

    @property
    def kept_pace(self) -> bool:
        """All arrived exactly once and the last one within PACE_S of the last publish."""
        return self.arrived == self.sent and not self.doubled and self.lag_s <= PACE_S


async def run_steps(
    who: str, port: int, sub: procs.Counter, pid: int, rates: list[int], seconds: float, offset: int
) -> list[Step]:
    """Publish each rate for `seconds` from message `offset` on and count what arrives upstream.

    Stops after the first step that does not keep pace: higher rates would only queue behind it.
    """
    steps = []
    base = await sub.report()
    for rate in rates:
        cpu, ticks = procs.cpu_s(pid), procs.machine_ticks()
        harness = procs.children_cpu_s() + procs.cpu_s(sub.proc.pid)
        pub = await procs.publish(port, rate, seconds, SENSORS, offset)
        busy, total = (b - a for a, b in zip(ticks, procs.machine_ticks(), strict=True))
        n = pub["sent"]
        rep = await sub.wait_for(base["unique"] + n, within_s=max(60.0, seconds * 10))
        cpu = procs.cpu_s(pid) - cpu
        harness = procs.children_cpu_s() + procs.cpu_s(sub.proc.pid) - harness
        arrived = rep["unique"] - base["unique"]
        lag = rep["last"] - pub["end"] if arrived else float("inf")
        step = Step(
            who=who,
            rate=rate,
            sent=n,
            publish_rate=n / (pub["end"] - pub["start"]),
            arrived=arrived,
            doubled=rep["dup_keys"] - base["dup_keys"],
            resent_seqs=rep["dup_seqs"] - base["dup_seqs"],
            lag_s=lag,
            delivered_rate=arrived / max(rep["last"] - pub["start"], 1e-9),
            cpu_us=cpu / max(n, 1) * 1e6,
            machine_busy=busy / max(total, 1),
            harness_us=harness / max(n, 1) * 1e6,
        )
        steps.append(step)
        base, offset = rep, offset + n
        if not step.kept_pace:
            break
    return steps


async def prepare_session(field: Mosquitto, client_id: str) -> None:
    """Create the agent's persistent field session, so nothing published before it connects is lost."""
    async with aiomqtt.Client(field.host, field.port, identifier=client_id, clean_session=False) as client:
        for k in range(SENSORS):
            await client.subscribe(f"sensors/s-{k}/data", qos=1)


async def relay_steps(tmp: Path, rates: list[int], seconds: float, *, window: int) -> list[Step]:
    """Run the rate steps through a bare paho relay, then through a real agent, on the same brokers."""
    steps: list[Step] = []
    async with Mosquitto(tmp / "field") as field, Mosquitto(tmp / "upstream") as upstream:
        async with procs.counter(upstream.port, "relay/#") as sub, procs.relay(field.port, upstream.port) as relay:
            steps += await run_steps("paho relay", field.port, sub, relay.pid, rates, seconds, 0)
        profiles = write_config(tmp / "profiles" / "bench-temp-mqtt.yaml", BENCH_PROFILE).parent
        config = write_config(
            tmp / "agent.yaml",
            {
                "gateway": {"id": fleet.GATEWAY, "data_dir": str(tmp / "agent-data")},
                "uplink": {
                    "port": upstream.port,
                    "window": window,
                    "heartbeat_s": 5,
                    "batch": {"max_items": 1, "max_age_s": 0.05},
                },
                "profiles_dirs": [str(profiles)],
                "local_broker": {"port": field.port},
                "devices": [
                    {"id": f"s-{k}", "profile": "bench-temp-mqtt", "topic": f"sensors/s-{k}/data"}
                    for k in range(SENSORS)
                ],
            },
        )
        await prepare_session(field, f"{fleet.GATEWAY}-sensors")
        async with (
            procs.counter(upstream.port, f"gw/{fleet.GATEWAY}/telemetry") as sub,
            procs.agent(config, tmp / "agent.log") as agent,
        ):
            warm = await run_steps("agent", field.port, sub, agent.pid, [500], 1.0, 10_000_000)
            if not warm or warm[0].arrived < warm[0].sent:
                raise RuntimeError(f"agent warm-up lost readings: {warm}; log:\n{(tmp / 'agent.log').read_text()}")
            steps += await run_steps("agent", field.port, sub, agent.pid, rates, seconds, 20_000_000)
    return steps


def steps_table(steps: list[Step]) -> str:
    """Return the per-step markdown table."""
    columns = (
        "path",
        "offered/s",
        "published/s",
        "arrived",
        "doubled",
        "resent seqs",
        "lag after last publish",
        "delivered/s",
        "CPU µs/reading",
        "machine CPU busy while publishing",
        "publisher + counter CPU µs/reading",
        "kept pace",
    )
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for s in steps:
        rows.append(
            f"| {s.who} | {s.rate:,} | {s.publish_rate:,.0f} | {s.arrived:,}/{s.sent:,} | {s.doubled} | "
            f"{s.resent_seqs} | {s.lag_s:.2f} s | {s.delivered_rate:,.0f} | {s.cpu_us:.0f} | {s.machine_busy:.0%} | "
            f"{s.harness_us:.0f} | {'yes' if s.kept_pace else 'no'} |"
        )
    return "\n".join(rows)


def steps_summary(steps: list[Step]) -> list[tuple[str, ...]]:
    """Return the summary rows: highest rate kept without loss, agent and relay."""

    def best(who: str) -> Step | None:
        ok = [s for s in steps if s.who == who and s.kept_pace]
        return max(ok, key=lambda s: s.rate, default=None)

    agent, relay = best("agent"), best("paho relay")
    top_agent = max((s.delivered_rate for s in steps if s.who == "agent"), default=0.0)
    top_relay = max((s.delivered_rate for s in steps if s.who == "paho relay"), default=0.0)
    agent_rate = agent.rate if agent else 0
    relay_rate = relay.rate if relay else 0
    return [
        (
            "4. one MQTT message per reading, field → agent → upstream, highest step kept without loss",
            f"{agent_rate:,} readings/s (best delivered {top_agent:,.0f}/s)",
            "≥ 5,000/s",
            "yes" if agent_rate >= 5000 else "**no**",
        ),
        (
            "4. same through a bare paho relay (no buffer, no rules), same run",
            f"{relay_rate:,} readings/s (best delivered {top_relay:,.0f}/s); agent/relay = "
            f"{top_agent / top_relay if top_relay else 0:.2f}",
            "",
            "",
        ),
    ]
