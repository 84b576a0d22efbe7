"""The asyncio layer over the hub: thread-safe publish in; awaitable subscriptions and a fan-out outbox out.

Publishers (ingest writer thread, API worker threads, the event loop) call `publish`; each subscription
lives on the event loop that opened it and is woken there (`call_soon_threadsafe`), only when its queue
goes from empty to non-empty. Events that happened here are also put in a bounded outbox for the broker
fan-out (oldest dropped and counted while the broker is away); events received from other processes
are published with their origin and never sent back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from cloud.incidents.roles import Actor
from cloud.live.events import Change
from cloud.live.hub import Event, Hub, Subscriber


class _Waker:
    """An asyncio.Event that any thread may set."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(self.event.set)


class Subscription:
    """One client's view of the hub; `batch()` waits for and returns its next messages."""

    def __init__(self, hub: Hub, sub: Subscriber) -> None:
        self.hub = hub
        self.sub = sub
        self.waker = _Waker()

    async def batch(self, limit: int = 500) -> list[dict[str, Any]]:
        """Wait until something is pending; return up to `limit` messages."""
        while True:
            out = self.hub.take(self.sub, limit)
            if out:
                return out
            # Cleared before awaiting, in this loop step: a wake scheduled meanwhile runs after and sets it.
            self.waker.event.clear()
            if self.sub.pending:
                continue
            await self.waker.event.wait()


class Stream:
    """A hub with wake-ups, subscriptions and the fan-out outbox."""

    def __init__(self, hub: Hub, *, outbox_limit: int = 10_000) -> None:
        self.hub = hub
        self.outbox: deque[Event] = deque(maxlen=outbox_limit)
        self.outbox_dropped = 0
        self.fanout_attached = False
        self._outbox_waker: _Waker | None = None
        self._wakers: dict[int, _Waker] = {}
        self._lock = threading.Lock()

    def publish(self, change: Change) -> Event:
        """Publish a change that happened in this process (any thread)."""
        event, woken = self.hub.publish(change)
        self._wake(woken)
        if self.fanout_attached:
            with self._lock:
                if len(self.outbox) == self.outbox.maxlen:
                    self.outbox_dropped += 1
                self.outbox.append(event)
                waker = self._outbox_waker
            if waker is not None:
                waker.wake()
        return event

    def publish_remote(self, origin: str, change: Change) -> Event | None:
        """Publish a change received from another process; our own (echoed by the broker) is ignored."""
        if origin == self.hub.origin:
            return None
        event, woken = self.hub.publish(change, origin=origin)
        self._wake(woken)
        return event

    def _wake(self, woken: list[Subscriber]) -> None:
        if not woken:
            return
        with self._lock:
            wakers = [self._wakers.get(s.id) for s in woken]
        for waker in wakers:
            if waker is not None:
                waker.wake()

    @contextlib.asynccontextmanager
    async def subscribe(
        self, actor: Actor, since: int | None = None, *, hub: str | None = None
    ) -> AsyncIterator[Subscription]:
        """Attach a subscription for `actor` (resuming after `since`) for the block's duration."""
        sub = self.hub.subscribe(actor, since, hub=hub)
        subscription = Subscription(self.hub, sub)
        with self._lock:
            self._wakers[sub.id] = subscription.waker
        try:
            yield subscription
        finally:
            with self._lock:
                self._wakers.pop(sub.id, None)
            self.hub.unsubscribe(sub)

    def attach_outbox(self) -> asyncio.Event:
        """Start keeping local events for the fan-out; return the event set when the outbox fills."""
        waker = _Waker()
        with self._lock:
            self._outbox_waker = waker
            self.fanout_attached = True
        return waker.event

    def drain_outbox(self) -> list[Event]:
        """Take every event waiting to be fanned out."""
        with self._lock:
            out = list(self.outbox)
            self.outbox.clear()
        return out

    def requeue(self, events: list[Event]) -> None:
        """Put back events whose fan-out failed, ahead of newer ones (bounded: the oldest are dropped)."""
        with self._lock:
            room = (self.outbox.maxlen or 0) - len(self.outbox)
            keep = events[-room:] if room > 0 else []
            self.outbox_dropped += len(events) - len(keep)
            self.outbox.extendleft(reversed(keep))
