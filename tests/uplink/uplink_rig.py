"""Shared pieces of the uplink tests on either broker: readings to send, settings, and what arrived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

from edge_agent.uplink import HEARTBEAT_SEQ, Uplink, UplinkSettings
from gateway import topics
from gateway.aio import cancel_and_wait
from gateway.contract import Envelope, decode_envelope
from gateway.readings import Reading
from gridwatch.broker import BrokerProcess
from tests.support.mosquitto import Collector

GW: Final = "gw-a"
T0: Final = 1_700_000_000_000


class Health:
    """A HealthSource with fixed agent facts."""

    def health(self) -> dict[str, Any]:
        return {"config_version": "cfg-3", "decode_errors": {"dev-1": 2}}


def readings(start: int, count: int) -> list[Reading]:
    """Readings whose value is their index, so arrivals can be checked one by one."""
    return [Reading("dev-1", "pm25", float(i), "ug/m3", T0 + i) for i in range(start, start + count)]


def settings(broker: BrokerProcess, **overrides: Any) -> UplinkSettings:
    """Uplink settings for `broker` (MQTT 3.1.1 where it speaks only that) with quick reconnects."""
    base: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "connect_timeout_s": 2,
        "heartbeat_s": 30,
    }
    if not broker.mqtt5:
        base |= {"protocol": "3.1.1", "username": GW, "password": "any password: amqtt accepts every client"}
    return UplinkSettings.model_validate(base | overrides)


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[asyncio.Task[None]]:
    """Run the uplink as a task for the duration of the block, then cancel it."""
    task = asyncio.create_task(uplink.run())
    try:
        yield task
    finally:
        # Re-cancels if Python 3.11's wait_for (inside aiomqtt) swallowed the first cancellation.
        await cancel_and_wait(task)


def envelopes(collector: Collector) -> dict[tuple[str, int], Envelope]:
    """The data envelopes received, by (gateway, seq); a seq delivered twice must carry the same envelope."""
    out: dict[tuple[str, int], Envelope] = {}
    for topic, payload, _ in collector.messages:
        if payload == topics.OFFLINE:
            continue
        env = decode_envelope(payload)
        if env.seq == HEARTBEAT_SEQ:
            continue
        assert topics.parse(topic) == (env.gateway, topics.Kind(env.lane))
        assert out.setdefault((env.gateway, env.seq), env) == env, f"seq {env.seq} arrived with other content"
    return out


def values(collector: Collector) -> list[float]:
    """The reading values received, each seq counted once, sorted."""
    return sorted(r.value for env in envelopes(collector).values() for r in env.readings)
