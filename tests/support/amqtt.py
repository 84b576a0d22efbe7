"""The embedded amqtt broker for tests (our shipped runner) and an MQTT 3.1.1 subscriber that survives restarts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Self

import aiomqtt

from gridwatch.broker import Amqtt, AmqttError
from tests.support.waiting import eventually

__all__ = ["Amqtt", "AmqttError", "Collector311"]


class Collector311:
    """A QoS 1 subscriber on MQTT 3.1.1 (persistent session: clean_session off) that reconnects after restarts.

    Keeps every message as (topic, payload, retain) in arrival order; `async with` connects, subscribes
    and returns once the subscription is in place. After a broker restart amqtt has forgotten the session,
    so every connect subscribes again.
    """

    def __init__(self, broker: Amqtt, topic: str = "gw/#", *, client_id: str = "collector") -> None:
        self.broker = broker
        self.topic = topic
        self.client_id = client_id
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connects = 0
        # Connections whose subscription is in place (amqtt forgets it on restart, so each one subscribes).
        self.subscribes = 0
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            client = aiomqtt.Client(
                self.broker.host,
                self.broker.port,
                identifier=self.client_id,
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=False,
                timeout=5,
            )
            try:
                async with client:
                    self.connects += 1
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
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
