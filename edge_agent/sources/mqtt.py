"""MQTT JSON source: sensor messages from the local broker into the intake, acknowledged once stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import aiomqtt

from edge_agent.backoff import Backoff
from edge_agent.config import DeviceSpec, LocalBrokerSection
from edge_agent.intake import Chunk, Intake
from edge_agent.sources import wall_ms
from edge_agent.sources.link import LinkState

log = logging.getLogger(__name__)


def _manual_ack(client: aiomqtt.Client) -> None:
    """Switch the wrapped paho client to manual acknowledgement (aiomqtt 2.5 has no setting for it)."""
    client._client.manual_ack_set(True)


def _ack(client: aiomqtt.Client, mid: int) -> None:
    """Send the PUBACK of a QoS 1 message."""
    client._client.ack(mid, 1)


class MqttSource:
    """Subscribes to each MQTT device's topic; a message is acknowledged only after it is stored.

    The session is persistent (fixed client id, clean_session off), so the broker keeps what sensors
    publish while the agent is down and redelivers what was never acknowledged.
    """

    def __init__(
        self,
        broker: LocalBrokerSection,
        specs: Sequence[DeviceSpec],
        intake: Intake,
        client_id: str,
        clock: Callable[[], int] = wall_ms,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = "mqtt:local"
        self.broker = broker
        self.intake = intake
        self.client_id = client_id
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.link = LinkState(f"{self.name} ({broker.host}:{broker.port})", log)
        self.topics: dict[str, str] = {}
        for spec in specs:
            if spec.device.topic is None:
                raise ValueError(f"{spec.device.id}: an MQTT device needs a topic")
            self.topics[spec.device.topic] = spec.device.id
        self.unknown_topic = 0

    async def run(self) -> None:
        """Consume forever, reconnecting with jittered, capped backoff."""
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username=self.broker.username,
                    password=self.broker.password,
                    identifier=self.client_id,
                    clean_session=False,
                ) as client:
                    _manual_ack(client)
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.link.went_up()
                    self.backoff.reset()
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                self.link.went_down(exc)
            await asyncio.sleep(self.backoff.next())

    async def _consume(self, client: aiomqtt.Client) -> None:
        """Queue each message and acknowledge it, in order, once the pipeline has stored it."""
        pending: asyncio.Queue[tuple[asyncio.Future[None], int]] = asyncio.Queue()
        acker = asyncio.create_task(self._ack_in_order(client, pending))
        try:
            async for message in client.messages:
                device = self.topics.get(message.topic.value)
                payload = message.payload
                if device is None or not isinstance(payload, bytes | bytearray):
                    self.unknown_topic += 1
                    if message.qos:
                        _ack(client, message.mid)
                    continue
                stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                await self.intake.submit(Chunk(device, bytes(payload), self.clock(), stored))
                if message.qos:
                    await pending.put((stored, message.mid))
        finally:
            acker.cancel()

    async def _ack_in_order(
        self, client: aiomqtt.Client, pending: asyncio.Queue[tuple[asyncio.Future[None], int]]
    ) -> None:
        """Acknowledge stored messages in arrival order (MQTT requires in-order PUBACKs)."""
        while True:
            stored, mid = await pending.get()
            await stored
            _ack(client, mid)
