"""Our shipped mosquitto config and ACL against a real broker: who may publish and read what."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiomqtt
import pytest

from edge_agent.uplink import CheckedClient, PublishRejected
from gateway import topics
from tests.support.fixtures_mosquitto import BROKER_USERS
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

V5 = aiomqtt.ProtocolVersion.V5
NOT_AUTHORIZED = 0x87


def _client(broker: Mosquitto, user: str, protocol: aiomqtt.ProtocolVersion = V5) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host, broker.port, username=user, password=BROKER_USERS[user], protocol=protocol, timeout=5
    )


def _checked(broker: Mosquitto, user: str) -> CheckedClient:
    return CheckedClient(broker.host, broker.port, username=user, password=BROKER_USERS[user], protocol=V5, timeout=5)


async def _next_payload(sub: aiomqtt.Client) -> tuple[str, bytes]:
    async with asyncio.timeout(5):
        async for message in sub.messages:
            assert isinstance(message.payload, bytes)
            return str(message.topic), message.payload
    raise AssertionError("subscription ended")


async def test_spoofed_topic_is_refused_with_not_authorized_and_never_delivered(
    mosquitto_auth_broker: Mosquitto,
) -> None:
    """A gateway publishing under another gateway's topic gets PUBACK 0x87 and no subscriber sees it."""
    async with _client(mosquitto_auth_broker, "ingest") as sub:
        await sub.subscribe("gw/+/#", qos=1)
        async with _checked(mosquitto_auth_broker, "gw-a") as gw:
            with pytest.raises(PublishRejected) as rejected:
                await gw.publish_checked(topics.telemetry("gw-b"), b"spoof", retain=False)
            assert rejected.value.reason.value == NOT_AUTHORIZED
            await gw.publish_checked(topics.telemetry("gw-a"), b"sentinel", retain=False)
        # Messages from one publisher arrive in order, so the sentinel proves the spoof was dropped.
        assert await _next_payload(sub) == (topics.telemetry("gw-a"), b"sentinel")


async def test_mqtt311_spoof_is_acked_silently_which_is_why_the_uplink_uses_mqtt5(
    mosquitto_auth_broker: Mosquitto,
) -> None:
    """With MQTT 3.1.1 the broker PUBACKs a refused publish as success and drops it silently."""
    async with _client(mosquitto_auth_broker, "ingest") as sub:
        await sub.subscribe("gw/+/#", qos=1)
        async with _client(mosquitto_auth_broker, "gw-a", aiomqtt.ProtocolVersion.V311) as gw:
            await gw.publish(topics.alerts("gw-b"), b"spoof", qos=1)
            await gw.publish(topics.alerts("gw-a"), b"sentinel", qos=1)
        assert await _next_payload(sub) == (topics.alerts("gw-a"), b"sentinel")


async def test_gateway_cannot_overwrite_its_own_config(mosquitto_auth_broker: Mosquitto) -> None:
    """The retained config is cloud-to-gateway only: the gateway's own write is refused."""
    async with _checked(mosquitto_auth_broker, "gw-a") as gw:
        with pytest.raises(PublishRejected):
            await gw.publish_checked(topics.config("gw-a"), b"{}", retain=True)
        await gw.publish_checked(topics.config_ack("gw-a"), b"ack", retain=False)
        await gw.publish_checked(topics.status("gw-a"), b"online", retain=True)


async def test_cloud_writes_config_and_only_that_gateway_reads_it(mosquitto_auth_broker: Mosquitto) -> None:
    """The ingest user publishes retained configs; each gateway receives its own and never another's."""
    async with _checked(mosquitto_auth_broker, "ingest") as cloud:
        await cloud.publish_checked(topics.config("gw-a"), b"bundle-a", retain=True)
        await cloud.publish_checked(topics.config("gw-b"), b"bundle-b", retain=True)
    async with _client(mosquitto_auth_broker, "gw-a") as gw:
        await gw.subscribe(topics.config("gw-a"), qos=1)
        assert await _next_payload(gw) == (topics.config("gw-a"), b"bundle-a")
    async with _client(mosquitto_auth_broker, "gw-b") as other:
        # mosquitto 2.0 grants the SUBACK and filters at delivery; retained messages come in subscribe
        # order, so receiving its own config first proves gw-a's was withheld.
        await other.subscribe(topics.config("gw-a"), qos=1)
        await other.subscribe(topics.config("gw-b"), qos=1)
        assert await _next_payload(other) == (topics.config("gw-b"), b"bundle-b")


async def test_bad_password_and_unknown_user_are_refused(mosquitto_auth_broker: Mosquitto) -> None:
    """A wrong password, an unknown user and an anonymous client all fail CONNACK with Not authorized."""
    attempts = [("gw-a", "wrong"), ("nobody", "pw"), (None, None)]
    for username, password in attempts:
        client = aiomqtt.Client(
            mosquitto_auth_broker.host,
            mosquitto_auth_broker.port,
            username=username,
            password=password,
            protocol=V5,
            timeout=5,
        )
        with pytest.raises(aiomqtt.MqttCodeError) as refused:
            async with client:
                pass
        assert refused.value.rc == NOT_AUTHORIZED


async def test_user_added_to_running_broker_can_connect_after_reload(tmp_path: Path) -> None:
    """add_user on a running broker reloads it (SIGHUP), after which the new gateway connects."""
    async with Mosquitto(tmp_path / "m", auth=True, users={"ingest": "pw-ingest"}) as broker:
        broker.add_user("gw-new", "fresh")
        client = aiomqtt.Client(broker.host, broker.port, username="gw-new", password="fresh", protocol=V5)
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            try:
                async with client:
                    break
            except aiomqtt.MqttCodeError:
                # The reload is asynchronous in the broker; poll until it took effect.
                assert asyncio.get_running_loop().time() < deadline, broker.log()
                await asyncio.sleep(0.05)


async def test_retained_messages_survive_a_broker_restart(mosquitto_broker: Mosquitto) -> None:
    """Persistence in our config keeps a retained config across a graceful broker restart."""
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.port, protocol=V5) as cloud:
        await cloud.publish(topics.config("gw-a"), b"bundle-9", qos=1, retain=True)
    await mosquitto_broker.restart(signal.SIGTERM)
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.port, protocol=V5) as gw:
        await gw.subscribe(topics.config("gw-a"), qos=1)
        assert await _next_payload(gw) == (topics.config("gw-a"), b"bundle-9")
