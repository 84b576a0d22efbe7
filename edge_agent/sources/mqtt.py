"""MQTT JSON source: sensor messages from the local broker into the intake, acknowledged once stored."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, cast

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from edge_agent.config import DeviceSpec, LocalBrokerSection
from edge_agent.intake import Chunk, Intake
from edge_agent.sources import wall_ms
from edge_agent.sources.link import LinkState
from edge_agent.uplink import LeanPaho
from gateway.backoff import Backoff

log = logging.getLogger(__name__)

_PUBACK: Final = struct.Struct("!BBH")


@dataclass(slots=True)
class RawMessage:
    """A received PUBLISH as the source needs it: topic bytes, payload, QoS and packet id."""

    topic: bytes
    payload: bytes
    qos: int
    mid: int


class SourcePaho(LeanPaho):
    """LeanPaho that queues QoS 0/1 MQTT 3.1.1 publishes as RawMessage and acknowledges many in one write.

    paho builds an MQTTMessage (and aiomqtt a Message and a Topic) per publish and matches the topic
    against its callback table; a sensor source needs only topic, payload and packet id. Anything else
    (MQTT 5, QoS 2, a malformed packet) takes paho's own path into aiomqtt's queue as aiomqtt.Message.
    """

    raw: asyncio.Queue[aiomqtt.Message | RawMessage] | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        queue = self.raw
        qos = (self._in_packet["command"] & 0x06) >> 1
        packet = self._in_packet["packet"]
        if queue is None or qos > 1 or self._protocol == paho.MQTTv5 or len(packet) < 2:
            return super()._handle_publish()
        end = 2 + (packet[0] << 8 | packet[1])
        start = end + 2 if qos else end
        if len(packet) < start:
            return super()._handle_publish()
        mid = packet[end] << 8 | packet[end + 1] if qos else 0
        queue.put_nowait(RawMessage(bytes(packet[2:end]), bytes(packet[start:]), qos, mid))
        if qos and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Sequence[int]) -> None:
        """Send the PUBACKs of `mids` (QoS 1, in this order) in one write, now.

        The broker sends no more than its in-flight window unacknowledged, so every loop turn a PUBACK
        waits (for a write-ready callback) is intake lost; what the socket does not take waits for one.
        """
        if not mids:
            return
        packet = b"".join([_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids])
        self._out_packet.append(
            {
                "command": paho.PUBACK,
                "mid": 0,
                "qos": 1,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": None,
            }
        )
        self.loop_write()


def _source_paho(client: aiomqtt.Client) -> SourcePaho:
    """Switch the paho client inside `client` to SourcePaho queueing into aiomqtt's queue; call before connecting."""
    client._client.__class__ = SourcePaho
    inner = cast(SourcePaho, client._client)
    inner.raw = _waiting_messages(client)
    return inner


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
        self._by_topic = {topic.encode(): device for topic, device in self.topics.items()}
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
                    # paho leaves Nagle on: PUBACKs then wait for the broker's delayed ACK (~40 ms), and with
                    # the broker's in-flight window (max_inflight_messages) that caps the intake rate.
                    socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
                )
                # One event-loop turn then takes every message waiting, and the pipeline one batch of them.
                inner = _source_paho(client)
                # Before connecting: a persistent session's redelivery arrives right after CONNACK.
                inner.manual_ack_set(True)
                async with client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.link.went_up()
                    self.backoff.reset()
                    await self._consume(client, inner)
            except aiomqtt.MqttError as exc:
                self.link.went_down(exc)
            await asyncio.sleep(self.backoff.next())

    async def _consume(self, client: aiomqtt.Client, inner: SourcePaho) -> None:
        """Queue each message and acknowledge it, in order, once the pipeline has stored it.

        Messages already waiting in aiomqtt's queue are taken in one go (its iterator costs a task per
        message), and such a group is acknowledged as a whole once its last chunk is stored: the
        pipeline stores chunks in arrival order, so the last one stored means all of them are.
        """
        pending = _Pending()
        acker = asyncio.create_task(self._ack_in_order(inner, pending))
        waiting = _waiting_messages(client)
        loop = asyncio.get_running_loop()
        by_topic = self._by_topic
        try:
            async for first in client.messages:
                group: list[aiomqtt.Message | RawMessage] = [first]
                while not waiting.empty():
                    group.append(waiting.get_nowait())
                now = self.clock()
                mids: list[int] = []
                chunks: list[Chunk] = []
                for message in group:
                    if isinstance(message, RawMessage):
                        device = by_topic.get(message.topic)
                        payload: object = message.payload
                    else:
                        device = self.topics.get(message.topic.value)
                        payload = message.payload
                    if device is None or not isinstance(payload, bytes | bytearray):
                        self.unknown_topic += 1
                    else:
                        chunks.append(Chunk(device, bytes(payload), now))
                    if message.qos:
                        mids.append(message.mid)
                stored: asyncio.Future[None] = loop.create_future()
                if chunks:
                    chunks[-1].stored = stored
                    await self.intake.submit_many(chunks)
                else:
                    stored.set_result(None)
                if mids:
                    pending.groups.append((stored, mids))
                    pending.added.set()
        finally:
            acker.cancel()

    @staticmethod
    async def _ack_in_order(inner: SourcePaho, pending: _Pending) -> None:
        """Acknowledge stored messages in arrival order (MQTT requires in-order PUBACKs)."""
        while True:
            await pending.added.wait()
            pending.added.clear()
            groups = pending.groups
            while groups:
                await groups[0][0]
                # Every group stored by now is acknowledged in the same write.
                mids: list[int] = []
                while groups and groups[0][0].done():
                    mids += groups.popleft()[1]
                inner.ack_many(mids)


@dataclass(slots=True)
class _Pending:
    """Groups of packet ids waiting for their `stored` future, in arrival order; `added` is set on append."""

    groups: deque[tuple[asyncio.Future[None], list[int]]] = field(default_factory=deque)
    added: asyncio.Event = field(default_factory=asyncio.Event)


def _waiting_messages(client: aiomqtt.Client) -> asyncio.Queue[aiomqtt.Message | RawMessage]:
    """Return aiomqtt's queue of received messages (2.5 keeps it private; its iterator reads the same one)."""
    return cast("asyncio.Queue[aiomqtt.Message | RawMessage]", client._queue)
