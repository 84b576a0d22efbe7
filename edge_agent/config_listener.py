"""Config bundles from the cloud: retained `gw/{id}/config` in; applied (or rolled back) and acknowledged out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path

import aiomqtt

from edge_agent.bundle import TryStart, active_version, apply_bundle, probe_sources
from edge_agent.uplink import UplinkSettings
from gateway import topics
from gateway.backoff import Backoff
from gateway.enrolment import AckStatus, EnrolmentWireError, decode_bundle, encode
from gateway.mqtt import session_args

log = logging.getLogger(__name__)


class ConfigListener:
    """Subscribes to the gateway's config topic; an applied new version asks the agent to restart on it.

    Its own connection (client id `<id>-config`), so a bundle never waits behind a telemetry drain.
    """

    name = "config"

    def __init__(
        self,
        settings: UplinkSettings,
        gateway: str,
        pointer: Path,
        restart: asyncio.Event,
        try_start: TryStart = probe_sources,
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.pointer = pointer
        self.restart = restart
        self.try_start = try_start
        self.counters: Counter[str] = Counter()

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password is not None else None,
            identifier=f"{s.client_id or self.gateway}-config",
            # The uplink's MQTT version, so a gateway configured for a 3.1.1-only broker reaches it here too.
            **session_args(s.protocol),
            tls_context=s.tls.context() if s.tls is not None else None,
            tls_insecure=s.tls.insecure if s.tls is not None else None,
            timeout=s.connect_timeout_s,
        )

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff; the broker redelivers the retained bundle."""
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(topics.config(self.gateway), qos=1)
                    backoff.reset()
                    async for message in client.messages:
                        if isinstance(message.payload, bytes) and message.payload:
                            await self._handle(client, message.payload)
            except aiomqtt.MqttError as exc:
                log.debug("config listener: %s", exc)
            await asyncio.sleep(backoff.next())

    async def _handle(self, client: aiomqtt.Client, payload: bytes) -> None:
        """Apply one bundle and publish its ack; a new applied version triggers the restart."""
        try:
            bundle = decode_bundle(payload)
        except EnrolmentWireError as exc:
            self.counters["invalid"] += 1
            log.warning("config bundle refused: %s", exc)
            return
        running = active_version(self.pointer)
        ack = await apply_bundle(self.pointer, bundle, time.time_ns() // 1_000_000, self.try_start)
        self.counters[ack.status.value] += 1
        await client.publish(topics.config_ack(self.gateway), encode(ack), qos=1)
        if ack.status is AckStatus.APPLIED and bundle.version != running:
            log.warning("config v%d applied; restarting on it", bundle.version)
            self.restart.set()
        elif ack.status is not AckStatus.APPLIED:
            log.warning("config v%d %s: %s", bundle.version, ack.status.value, ack.error)
