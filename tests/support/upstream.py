"""What reached an upstream broker, for edge tests without a cloud: envelopes applied once per seq."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from gateway.contract import ContractError, decode_envelope
from gateway.readings import Reading


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
                async with aiomqtt.Client("127.0.0.1", port, identifier="test-upstream", clean_session=False) as client:
                    await client.subscribe("gw/+/#", qos=1)
                    async for message in client.messages:
                        self._account(str(message.topic), message.payload)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.5)

    def _account(self, topic: str, payload: Any) -> None:
        """Apply one message: a status heartbeat, or an envelope applied at most once per seq."""
        if not isinstance(payload, bytes):
            return
        if topic.endswith("/status"):
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
