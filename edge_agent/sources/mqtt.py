"""MQTT JSON source: sensor messages from the local broker into the intake, acknowledged once stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import aiomqtt

from edge_agent.config import DeviceSpec, LocalBrokerSection
from edge_agent.intake import Chunk, Intake
from edge_agent.sources import wall_ms
from edge_agent.sources.link import LinkState
from edge_agent.uplink import use_lean_paho
from gateway.backoff import Backoff

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
                client = aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username=self.broker.username,
                    password=self.broker.password,
                    identifier=self.client_id,
                    clean_session=False,
                )
                # One event-loop turn then takes every message waiting, and the pipeline one batch of them.
                use_lean_paho(client)
                async with client:
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
        """Queue each message and acknowledge it, in order, once the pipeline has stored it.

        Messages already waiting in aiomqtt's queue are taken in one go (its iterator costs a task per
        message), and such a group is acknowledged as a whole once its last chunk is stored: the
        pipeline stores chunks in arrival order, so the last one stored means all of them are.
        """
        pending: asyncio.Queue[tuple[asyncio.Future[None], list[int]]] = asyncio.Queue()
        acker = asyncio.create_task(self._ack_in_order(client, pending))
        waiting = _waiting_messages(client)
        loop = asyncio.get_running_loop()
        try:
            async for first in client.messages:
                group = [first]
                while not waiting.empty():
                    group.append(waiting.get_nowait())
                now = self.clock()
                mids: list[int] = []
                last: Chunk | None = None
                for message in group:
                    device = self.topics.get(message.topic.value)
                    payload = message.payload
                    if device is None or not isinstance(payload, bytes | bytearray):
                        self.unknown_topic += 1
                    else:
                        if last is not None:
                            await self.intake.submit(last)
                        last = Chunk(device, bytes(payload), now)
                    if message.qos:
                        mids.append(message.mid)
                stored: asyncio.Future[None] = loop.create_future()
                if last is not None:
                    last.stored = stored
                    await self.intake.submit(last)
                else:
                    stored.set_result(None)
                if mids:
                    await pending.put((stored, mids))
        finally:
            acker.cancel()

    async def _ack_in_order(
        self, client: aiomqtt.Client, pending: asyncio.Queue[tuple[asyncio.Future[None], list[int]]]
    ) -> None:
        """Acknowledge stored messages in arrival order (MQTT requires in-order PUBACKs)."""
        while True:
            stored, mids = await pending.get()
            await stored
            for mid in mids:
                _ack(client, mid)


def _waiting_messages(client: aiomqtt.Client) -> asyncio.Queue[aiomqtt.Message]:
    """Return aiomqtt's queue of received messages (2.5 keeps it private; its iterator reads the same one)."""
    queue: asyncio.Queue[aiomqtt.Message] = client._queue
    return queue
