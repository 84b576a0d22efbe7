"""Fan-out over the broker: this process's events out to `gridwatch/live/events` (QoS 1), other processes' in.

Every API process runs one bridge with the cloud's broker account: it publishes each local event as
JSON `{v, origin, type, key, data}` and publishes every event received from another origin into its own
hub (re-sequenced there), so every replica's clients see every event. Its own echoes are dropped by
origin. A malformed payload is counted and dropped. While the broker is away, local events wait in the
stream's bounded outbox; the bridge reconnects with jittered, capped backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, Final

import aiomqtt
import orjson

from cloud.ingest.settings import IngestSettings
from cloud.live.events import TYPES, Change
from cloud.live.hub import Event
from cloud.live.stream import Stream
from gateway.aio import run_together
from gateway.backoff import Backoff

log = logging.getLogger(__name__)

WIRE_VERSION: Final = 1


class WireError(ValueError):
    """A fan-out payload is not a live event."""


def encode(event: Event) -> bytes:
    """Return the wire form of a local event."""
    doc = {"v": WIRE_VERSION, "origin": event.origin, "type": event.type, "key": event.key, "data": event.data}
    return orjson.dumps(doc)


def decode(payload: bytes) -> tuple[str, Change]:
    """Return (origin, change) of a wire payload; raise WireError when it is not one."""
    try:
        doc: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise WireError("not JSON") from exc
    if not isinstance(doc, dict) or doc.get("v") != WIRE_VERSION:
        raise WireError("not a version 1 live event")
    origin, type_, key, data = doc.get("origin"), doc.get("type"), doc.get("key"), doc.get("data")
    if not isinstance(origin, str) or type_ not in TYPES or not isinstance(key, str) or not isinstance(data, dict):
        raise WireError("missing or mistyped field")
    return origin, Change(str(type_), key, data)


class Fanout:
    """The broker bridge of one process; `run()` until cancelled."""

    def __init__(self, stream: Stream, broker: IngestSettings, topic: str) -> None:
        self.stream = stream
        self.broker = broker
        self.topic = topic
        self.counters: Counter[str] = Counter()
        self.subscribed = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        return self.broker.client(f"live-{self.stream.hub.origin[:12]}")

    async def run(self) -> None:
        """Bridge until cancelled, reconnecting with backoff."""
        ready = self.stream.attach_outbox()
        backoff = Backoff(self.broker.backoff_initial_s, self.broker.backoff_max_s)
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    backoff.reset()
                    # Not a TaskGroup: a publish can swallow the cancellation (Python 3.11's wait_for), and a
                    # TaskGroup cancels only once, which kept the cloud's shutdown waiting for ever.
                    await run_together(self._send(client, ready), self._receive(client))
            except* (aiomqtt.MqttError, OSError) as group:
                self.counters["disconnects"] += 1
                log.debug("live fan-out: %s", group.exceptions[0])
            self.subscribed.clear()
            await asyncio.sleep(backoff.next())

    async def _send(self, client: aiomqtt.Client, ready: asyncio.Event) -> None:
        while True:
            ready.clear()
            events = self.stream.drain_outbox()
            if not events:
                await ready.wait()
                continue
            for n, event in enumerate(events):
                try:
                    await client.publish(self.topic, encode(event), qos=1)
                except aiomqtt.MqttError:
                    self.stream.requeue(events[n:])
                    raise
                self.counters["sent"] += 1

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes):
                self.counters["malformed"] += 1
                continue
            try:
                origin, change = decode(payload)
            except WireError as exc:
                self.counters["malformed"] += 1
                log.debug("live fan-out: dropped a payload: %s", exc)
                continue
            if self.stream.publish_remote(origin, change) is None:
                self.counters["own"] += 1
            else:
                self.counters["received"] += 1
