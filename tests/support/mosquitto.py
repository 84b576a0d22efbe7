"""Real brokers for tests (mosquitto; amqtt, the demo's fallback) and a QoS 1 subscriber that survives restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

import aiomqtt

from gateway.aio import cancel_and_wait
from gateway.mqtt import session_args
from gridwatch.broker import MOSQUITTO, Amqtt, BrokerProcess, Mosquitto, MosquittoError, free_port
from tests.support.waiting import eventually

__all__ = ["MOSQUITTO", "Amqtt", "Collector", "Mosquitto", "MosquittoError", "free_port"]


class Collector:
    """A QoS 1 subscriber with a persistent session (MQTT 5, or 3.1.1 on amqtt) that reconnects across restarts.

    Keeps every message as (topic, payload, retain) in arrival order; `async with` connects, subscribes
    and returns once the subscription is in place.
    """

    def __init__(
        self,
        broker: BrokerProcess,
        topic: str = "gw/#",
        *,
        client_id: str = "collector",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.client_id = client_id
        self.username = username
        self.password = password
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connects = 0
        # Connections whose subscription is in place.
        self.subscribes = 0
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            client = aiomqtt.Client(
                self.broker.host,
                self.broker.port,
                identifier=self.client_id,
                username=self.username,
                password=self.password,
                timeout=5,
                **session_args("5" if self.broker.mqtt5 else "3.1.1", expiry_s=3600),
            )
            try:
                async with client:
                    self.connects += 1
                    # Every connect subscribes again: a restarted amqtt has forgotten the session.
                    await client.subscribe(self.topic, qos=1)
                    self.subscribes += 1
                    self._subscribed.set()
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        self.messages.append((str(message.topic), payload, message.retain))
            except aiomqtt.MqttError:
                # The broker is down or restarting; retry quickly (a test harness, not a gateway).
                await asyncio.sleep(0.05)

    async def wait_until(self, condition: Callable[[], bool], within_s: float = 20.0) -> None:
        """Return once `condition()` holds; fail after `within_s` seconds, showing the broker log."""
        try:
            await eventually(condition, within_s)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; broker log:\n{self.broker.log()}") from None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(15):
            await self._subscribed.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
