"""The agent process: a validated config in; sources, pipeline, rules, buffer and uplink in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent.buffer import GROUP_COMMIT_S, DurableBuffer
from edge_agent.config import AgentConfig, DeviceSpec
from edge_agent.config_listener import ConfigListener
from edge_agent.decode.base import Decoder
from edge_agent.decode.hj212 import Hj212Decoder
from edge_agent.intake import Intake
from edge_agent.pipeline import Pipeline
from edge_agent.rules import RuleEngine, SnapshotError
from edge_agent.sources import Source, wall_ms
from edge_agent.sources.hj212 import Hj212Listener, StationStream
from edge_agent.sources.modbus import ModbusPoller
from edge_agent.sources.mqtt import MqttSource
from edge_agent.sources.serial import RawStream, SerialSource
from edge_agent.state import load_state, save_state
from edge_agent.uplink import Uplink
from gateway.aio import cancel_and_wait

log = logging.getLogger(__name__)

# How many queued chunks the pipeline takes into one buffer transaction.
BATCH_CHUNKS = 512
# How often time-driven rules are evaluated and rule state is saved.
TICK_S = 1.0


class Agent:
    """Everything one gateway runs, wired from its configuration."""

    def __init__(self, config: AgentConfig, specs: Sequence[DeviceSpec], config_path: Path | None = None) -> None:
        self.config = config
        self.gateway = config.gateway.id
        data_dir = config.gateway.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = data_dir / "rules.json"
        self.buffer = DurableBuffer(
            data_dir / "buffer.db",
            gateway=self.gateway,
            max_bytes=config.buffer.max_bytes,
            fsync=config.buffer.fsync,
        )
        self.engine = RuleEngine(self.gateway)
        self.intake = Intake()
        self.pipeline = Pipeline(specs, self.buffer, self.engine)
        snapshot = load_state(self.state_path)
        if snapshot is not None:
            try:
                self.engine.load_snapshot(snapshot)
            except SnapshotError as exc:
                # A state file from another gateway or version must not keep the gateway down.
                log.warning("rule state in %s not restored: %s; starting fresh", self.state_path, exc)
        self.sources = self._sources(specs)
        self.uplink = Uplink(config.uplink, self.buffer, self.gateway, self)
        self.stopping = asyncio.Event()
        # Set when a new config bundle was applied: the process restarts the agent on it.
        self.restart = asyncio.Event()
        self.config_listener = (
            ConfigListener(config.uplink, self.gateway, config_path, self.restart) if config_path is not None else None
        )

    def _sources(self, specs: Sequence[DeviceSpec]) -> list[Source]:
        """Build one source per serial port, Modbus line, local broker and HJ 212 listener."""
        ports = {p.name: p for p in self.config.ports}
        decoders = {d: s.decoder for d, s in self.pipeline.devices.items()}
        sources: list[Source] = []
        modbus_lines: dict[str, list[DeviceSpec]] = defaultdict(list)
        mqtt: list[DeviceSpec] = []
        stations: dict[str, str] = {}
        for spec in specs:
            device, read = spec.device, spec.profile.read
            if read.transport == "modbus" and device.port is not None:
                modbus_lines[device.port].append(spec)
            elif read.transport == "mqtt":
                mqtt.append(spec)
            elif read.transport == "tcp" and device.mn is not None:
                stations[device.mn] = device.id
            elif read.transport == "serial" and device.port is not None:
                handler: RawStream | StationStream
                if read.decoder == "hj212":
                    handler = StationStream(self._hj212(decoders), self.intake, fixed=device.id)
                else:
                    handler = RawStream(device.id, self.intake)
                sources.append(SerialSource(ports[device.port], handler))
        stats = {d: s.decoder.stats for d, s in self.pipeline.devices.items()}
        for port, line in modbus_lines.items():
            sources.append(ModbusPoller(ports[port], line, self.intake, stats))
        if mqtt and self.config.local_broker is not None:
            sources.append(MqttSource(self.config.local_broker, mqtt, self.intake, f"{self.gateway}-sensors"))
        if stations and self.config.hj212_listen is not None:
            listen = self.config.hj212_listen
            stream = StationStream(self._hj212(decoders), self.intake, by_mn=stations)
            sources.append(Hj212Listener(listen.host, listen.port, stream))
        return sources

    @staticmethod
    def _hj212(decoders: dict[str, Decoder]) -> dict[str, Hj212Decoder]:
        """Return the HJ 212 decoders among the pipeline's device decoders."""
        return {d: dec for d, dec in decoders.items() if isinstance(dec, Hj212Decoder)}

    def health(self) -> dict[str, Any]:
        """Return what the uplink heartbeat cannot know: pipeline rate, autonomy, decode errors, config."""
        stats = self.buffer.stats()
        counters = self.pipeline.counters
        per_reading = stats.depth_bytes / stats.depth_items if stats.depth_items else 64.0
        autonomy = self.buffer.autonomy_hours(counters.ingress.per_s * per_reading)
        return {
            "config_version": self.config.config_version,
            # JSON has no infinity: an unbounded autonomy (nothing coming in) is reported as null.
            "autonomy_h": round(autonomy, 2) if math.isfinite(autonomy) else None,
            "ingress_per_s": round(counters.ingress.per_s, 1),
            "readings": counters.readings,
            "alerts": counters.alerts,
            "intake_overflow": dict(self.intake.overflow),
            "decode_errors": self.pipeline.decode_errors(),
            "rules": self.engine.counters(),
        }

    async def run(self) -> None:
        """Run every task until `stopping` is set or a task fails; save rule state on the way out."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(source.run(), name=source.name) for source in self.sources]
                tasks.append(group.create_task(self.uplink.run(), name="uplink"))
                tasks.append(group.create_task(self._process(), name="pipeline"))
                tasks.append(group.create_task(self._tick(), name="tick"))
                if self.config_listener is not None:
                    tasks.append(group.create_task(self.config_listener.run(), name="config"))
                done = [group.create_task(event.wait()) for event in (self.stopping, self.restart)]
                await asyncio.wait(done, return_when=asyncio.FIRST_COMPLETED)
                await cancel_and_wait([*tasks, *done])
        finally:
            save_state(self.state_path, self.engine.snapshot())
            self.buffer.close()

    async def _process(self) -> None:
        """Move chunks from the intake through the pipeline and wake the uplink.

        One buffer transaction per batch, at most one per GROUP_COMMIT_S: what arrives meanwhile joins the
        next batch. It stays on the loop's thread: in a worker thread SQLite releases the GIL on every step,
        and the handoffs to the busy loop cost more CPU than the transaction (measured).
        """
        loop = asyncio.get_running_loop()
        last = -math.inf
        while True:
            wait = last + GROUP_COMMIT_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            chunks = await self.intake.take(BATCH_CHUNKS)
            last = loop.time()
            self.pipeline.process(chunks)
            self.uplink.notify()

    async def _tick(self) -> None:
        """Advance no-data rules and held thresholds on the clock and save rule state, once a second."""
        while True:
            await asyncio.sleep(TICK_S)
            if self.pipeline.tick(wall_ms()):
                self.uplink.notify()
            save_state(self.state_path, self.engine.snapshot())


def resolve_data_dir(config_path: Path, config: AgentConfig) -> AgentConfig:
    """Anchor a relative data_dir at the config file's folder, so the agent runs from anywhere."""
    data_dir = config.gateway.data_dir
    if data_dir.is_absolute():
        return config
    gateway = config.gateway.model_copy(update={"data_dir": config_path.parent / data_dir})
    return config.model_copy(update={"gateway": gateway})
