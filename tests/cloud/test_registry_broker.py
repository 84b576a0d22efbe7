"""Registry credentials on a real mosquitto: enrolled gateways connect, confined; revoked and rotated ones don't."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from cloud.broker_sync import BrokerSync
from cloud.registry import BrokerUnavailable
from edge_agent.uplink import CheckedClient, PublishRejected
from gateway import topics
from tests.cloud.registry_rig import T0, broker_registry, make_registry, wait_connectable
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

V5 = aiomqtt.ProtocolVersion.V5
NOT_AUTHORIZED = 0x87


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    """A running mosquitto with our shipped ACL and only the cloud's ingest user."""
    async with Mosquitto(tmp_path / "m", auth=True, users={"ingest": "pw-ingest"}) as running:
        yield running


def _client(broker: Mosquitto, user: str, password: str) -> CheckedClient:
    return CheckedClient(broker.host, broker.port, username=user, password=password, protocol=V5, timeout=5)


async def _connect_rc(broker: Mosquitto, user: str, password: str) -> int:
    """Return the CONNACK reason code of one connection attempt (0 when accepted)."""
    try:
        async with _client(broker, user, password):
            return 0
    except aiomqtt.MqttCodeError as exc:
        return -1 if exc.rc is None else int(exc.rc if isinstance(exc.rc, int) else exc.rc.value)


async def _refused(broker: Mosquitto, user: str, password: str, within_s: float = 5.0) -> None:
    """Return once a connection of `user` is refused with Not authorized."""
    deadline = asyncio.get_running_loop().time() + within_s
    while (rc := await _connect_rc(broker, user, password)) == 0:
        assert asyncio.get_running_loop().time() < deadline, broker.log()
        await asyncio.sleep(0.05)
    assert rc == NOT_AUTHORIZED


async def _until_closed(client: aiomqtt.Client) -> None:
    """Consume messages until the broker closes the session (MqttError) or 5 s pass (TimeoutError)."""
    async with asyncio.timeout(5):
        async for _ in client.messages:
            pass


async def test_enrolled_gateway_connects_and_publishes_only_under_its_own_prefix(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """Credentials from enrol work on the real broker, and the shipped ACL confines them to gw/<id>/."""
    registry = broker_registry(tmp_path, broker)
    _, token = registry.register_gateway("gw-a", "site", T0)
    registry.register_gateway("gw-b", "site", T0)
    creds = registry.enrol(token.token, T0)
    await wait_connectable(broker, creds.username, creds.password)
    async with _client(broker, creds.username, creds.password) as gw:
        await gw.publish_checked(topics.telemetry("gw-a"), b"mine", retain=False)
        await gw.publish_checked(topics.config_ack("gw-a"), b"ack", retain=False)
        for foreign in (topics.telemetry("gw-b"), topics.config("gw-a"), "other/topic"):
            with pytest.raises(PublishRejected):
                await gw.publish_checked(foreign, b"spoof", retain=False)
    # The cloud's own user was kept through the rewrite of the password file.
    await wait_connectable(broker, "ingest", "pw-ingest")


async def test_revoke_cuts_the_live_session_and_refuses_reconnects(tmp_path: Path, broker: Mosquitto) -> None:
    """mosquitto 2.0 drops a connected client whose user vanished on SIGHUP; its reconnect is refused."""
    registry = broker_registry(tmp_path, broker)
    _, token = registry.register_gateway("gw-a", "site", T0)
    creds = registry.enrol(token.token, T0)
    await wait_connectable(broker, creds.username, creds.password)
    async with aiomqtt.Client(
        broker.host, broker.port, username=creds.username, password=creds.password, protocol=V5, keepalive=60
    ) as live:
        await live.subscribe(topics.config("gw-a"), qos=1)
        registry.revoke("gw-a", T0 + 1)
        # Keepalive is 60 s and nothing is published: only the broker closing the session ends this loop.
        with pytest.raises(aiomqtt.MqttError):
            await _until_closed(live)
    await _refused(broker, creds.username, creds.password)


async def test_rotate_refuses_the_old_password_and_accepts_the_new(tmp_path: Path, broker: Mosquitto) -> None:
    """After rotate the previous password is refused at CONNECT and the new one connects."""
    registry = broker_registry(tmp_path, broker)
    _, token = registry.register_gateway("gw-a", "site", T0)
    old = registry.enrol(token.token, T0)
    await wait_connectable(broker, old.username, old.password)
    new = registry.rotate("gw-a", T0 + 1)
    await _refused(broker, old.username, old.password)
    await wait_connectable(broker, new.username, new.password)


async def test_failed_broker_sync_rolls_back_the_enrolment(tmp_path: Path, broker: Mosquitto) -> None:
    """When the password file cannot be written the token stays unused and works once the broker is back."""
    assert broker.files.password_file is not None
    sync = BrokerSync(tmp_path / "missing-dir" / "passwd", pid=broker.pid)
    registry = make_registry(tmp_path, sync)
    _, token = registry.register_gateway("gw-a", "site", T0)
    with pytest.raises(BrokerUnavailable):
        registry.enrol(token.token, T0)
    assert registry.gateway("gw-a").state == "pending"
    sync.password_file = broker.files.password_file
    creds = registry.enrol(token.token, T0 + 1)
    await wait_connectable(broker, creds.username, creds.password)
