"""The uplink on MQTT 3.1.1 against the embedded amqtt broker: DurableBuffer -> Uplink -> amqtt -> a subscriber."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from pydantic import ValidationError

from edge_agent.buffer import DurableBuffer
from edge_agent.bundle import active_version, install
from edge_agent.config import AgentConfig, DeviceSpec
from edge_agent.config_listener import ConfigListener
from edge_agent.uplink import Uplink, UplinkSettings
from gateway import topics
from gateway.aio import cancel_and_wait
from gateway.enrolment import AckStatus, ConfigBundle, decode_ack, encode
from simulators.relay import TcpRelay
from tests.support.mosquitto import Amqtt, Collector
from tests.uplink.uplink_rig import GW, T0, Health, readings, running, settings, values

pytestmark = pytest.mark.integration


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[DurableBuffer]:
    """A real durable buffer for gateway gw-a."""
    with DurableBuffer(tmp_path / "buffer.db", gateway=GW, max_bytes=64 * 1024 * 1024) as buf:
        yield buf


@pytest.fixture
async def amqtt(tmp_path: Path) -> AsyncIterator[Amqtt]:
    """A running embedded amqtt broker on a free loopback port."""
    async with Amqtt(tmp_path / "amqtt") as broker:
        yield broker


def test_protocol_setting_defaults_to_mqtt5_and_reads_yaml_numbers() -> None:
    """The uplink stays on MQTT 5 unless told; `protocol: 5` from YAML is accepted and other versions refused."""
    assert UplinkSettings().protocol == "5"
    assert UplinkSettings.model_validate({"protocol": 5}).protocol == "5"
    assert UplinkSettings.model_validate({"protocol": "3.1.1"}).protocol == "3.1.1"
    with pytest.raises(ValidationError, match="protocol"):
        UplinkSettings.model_validate({"protocol": "3.1"})


async def test_broker_restart_loses_nothing_and_doubles_nothing(amqtt: Amqtt, buffer: DurableBuffer) -> None:
    """amqtt killed while data keeps coming: after its restart every reading arrives, each seq with one content."""
    # amqtt keeps sessions in memory only: a restarted amqtt queues nothing for a subscriber until it has
    # subscribed again, so the uplink's link (a relay) stays cut until the collector is back.
    async with TcpRelay(amqtt.host, amqtt.port) as link:
        uplink = Uplink(settings(amqtt, port=link.port, batch={"max_items": 200}), buffer, GW, Health())
        async with Collector(amqtt) as sub, running(uplink):
            buffer.put_readings(readings(0, 600))
            uplink.notify()
            await sub.wait_until(lambda: len(values(sub)) >= 600)
            await amqtt.stop(signal.SIGKILL)
            for start in range(600, 1800, 100):
                buffer.put_readings(readings(start, 100))
                uplink.notify()
            await sub.wait_until(lambda: not uplink.connected)
            link.cut(3600)
            await amqtt.start()
            await sub.wait_until(lambda: sub.subscribes >= 2, within_s=30)
            link.cut(0)  # the link is back: refused for 0 s from now
            await sub.wait_until(lambda: uplink.connected, within_s=30)
            await sub.wait_until(lambda: len(values(sub)) >= 1800, within_s=30)
            await sub.wait_until(lambda: buffer.stats().depth_items == 0)
    assert values(sub) == [float(i) for i in range(1800)]
    assert uplink.counters.reconnects == 1
    assert buffer.stats().sealed_unacked == 0


async def no_sources(config: AgentConfig, specs: Sequence[DeviceSpec]) -> None:
    """A try_start that opens nothing: this test is about the listener's link, not about serial ports."""


async def test_config_listener_takes_a_retained_bundle_over_mqtt311(amqtt: Amqtt, tmp_path: Path) -> None:
    """The config listener, on the uplink's 3.1.1 setting, gets the retained bundle from amqtt, applies and acks it."""
    document: dict[str, Any] = {
        "gateway": {"id": GW},
        "uplink": {"host": amqtt.host, "port": amqtt.port, "username": GW, "password": "pw", "protocol": "3.1.1"},
        "ports": [{"name": "gnss", "path": "/dev/ttyGW0"}],
        "devices": [{"id": "gnss-1", "profile": "gnss-nmea", "port": "gnss", "place": {"grid": "41010210100101"}}],
    }
    pointer = tmp_path / "agent.yaml"
    install(pointer, 1, document | {"config_version": "1"})
    bundle = ConfigBundle(gateway=GW, version=2, document=document | {"config_version": "2"}, created_ms=T0)
    restart = asyncio.Event()
    listener = ConfigListener(settings(amqtt), GW, pointer, restart, try_start=no_sources)
    async with Collector(amqtt, topics.config_ack(GW)) as acks:
        v311 = aiomqtt.ProtocolVersion.V311
        async with aiomqtt.Client(amqtt.host, amqtt.port, username="ingest", protocol=v311, timeout=5) as cloud:
            await cloud.publish(topics.config(GW), encode(bundle), qos=1, retain=True)
        task = asyncio.create_task(listener.run())
        try:
            async with asyncio.timeout(20):
                await restart.wait()
            await acks.wait_until(lambda: len(acks.messages) >= 1)
        finally:
            await cancel_and_wait(task)
    ack = decode_ack(acks.messages[0][1])
    assert (ack.version, ack.status) == (2, AckStatus.APPLIED)
    assert active_version(pointer) == 2
