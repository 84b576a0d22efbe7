"""A bundle round trip over a real mosquitto: retained config to the gateway, rollback, ack back to the registry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from cloud.fleet import Liveness, fleet_view
from edge_agent.bundle import active_version, apply_bundle, install
from gateway import topics
from gateway.enrolment import decode_bundle, encode
from tests.cloud.registry_rig import T0, broker_registry, gnss_device, seed_bundle, wait_connectable
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

V5 = aiomqtt.ProtocolVersion.V5


async def test_bad_bundle_rolls_back_on_the_gateway_and_the_fleet_view_reports_it(tmp_path: Path) -> None:
    """A retained bundle with a missing serial port reaches the gateway, is rolled back, and its ack is recorded."""
    async with Mosquitto(tmp_path / "m", auth=True, users={"ingest": "pw-ingest"}) as broker:
        registry = broker_registry(tmp_path, broker)
        _, token = registry.register_gateway("gw-a", "site", T0)
        registry.bind_device(gnss_device("gnss-1", "gw-a"), T0)
        seed_bundle(registry, "gw-a", T0, serial_path="/dev/null")
        creds = registry.enrol(token.token, T0)
        pointer = tmp_path / "etc" / "agent.yaml"
        pointer.parent.mkdir()
        first = dict(creds.bundle.document)
        first["uplink"] = {**first["uplink"], "password": creds.password}
        install(pointer, creds.bundle.version, first)

        bad = registry.default_document("gw-a") | {"ports": [{"name": "gnss", "path": str(tmp_path / "ttyGONE")}]}
        message = registry.bundles.publish_bundle("gw-a", bad, T0 + 1000)
        await wait_connectable(broker, creds.username, creds.password)
        cloud = aiomqtt.Client(broker.host, broker.port, username="ingest", password="pw-ingest", protocol=V5)
        gateway = aiomqtt.Client(
            broker.host, broker.port, username=creds.username, password=creds.password, protocol=V5
        )
        async with cloud, gateway:
            await cloud.subscribe(topics.config_ack("gw-a"), qos=1)
            await cloud.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
            await gateway.subscribe(topics.config("gw-a"), qos=1)
            async with asyncio.timeout(10):
                received = await anext(gateway.messages)
                assert isinstance(received.payload, bytes)
                ack = await apply_bundle(pointer, decode_bundle(received.payload), T0 + 2000)
                await gateway.publish(topics.config_ack("gw-a"), encode(ack), qos=1)
                reply = await anext(cloud.messages)
        assert isinstance(reply.payload, bytes)
        gw_id, _ = topics.parse(str(reply.topic))
        registry.bundles.record_ack(gw_id, reply.payload, T0 + 3000)

    assert active_version(pointer) == 1
    (row,) = fleet_view(registry, Liveness())
    assert (row.bundle_latest, row.bundle_ack, row.bundle_applied) == (2, "rolled_back", None)
    assert row.bundle_error is not None
    assert "ttyGONE" in row.bundle_error
