"""The sans-I/O hub: changes in; sequenced events, a resume ring and per-subscriber conflating queues out.

Every published change gets the next `seq` of this hub (seeded by the caller, e.g. wall-clock ms x 1000,
so a restarted process never reuses a seq) and goes into a bounded ring. A subscriber resuming `since`
a seq gets every later event in the ring that it may see, or a `resync` message when that seq fell out
of the ring, belongs to another hub, or lies in the future. Each subscriber's undelivered events are
keyed (a case, an alert fingerprint, a gateway, a device): a newer event for a pending key replaces the
older one (conflation, counted), so a slow client gets the latest state and never a backlog. If a flood
of distinct keys fills the queue, it is emptied and the client is told to resync: memory stays bounded
and nobody is disconnected for being slow.

Thread-safe (one lock): the case engine publishes from ingest and API threads. No clock, no I/O.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from cloud.incidents.ports import District
from cloud.incidents.roles import Actor
from cloud.live.events import Change
from cloud.live.scope import Subject, may_see, subject

RESYNC: Final = "resync"


@dataclass(frozen=True, slots=True)
class Event:
    """One sequenced change; `origin` names the hub (process) where it happened."""

    seq: int
    type: str
    key: str
    data: dict[str, Any]
    origin: str
    subject: Subject | None  # None until a subscriber needs it (read with `subject_of`)

    def subject_of(self) -> Subject:
        """Return what the scope rule reads of this event."""
        return self.subject if self.subject is not None else subject(self.type, self.data)

    def message(self) -> dict[str, Any]:
        """Return the wire message `{seq, type, data}`."""
        return {"seq": self.seq, "type": self.type, "data": self.data}


def resync_message(seq: int, reason: str) -> dict[str, Any]:
    """Return the message telling a client to re-fetch its lists through the REST API, current as of `seq`."""
    return {"seq": seq, "type": RESYNC, "data": {"reason": reason}}


class Subscriber:
    """One client's actor and its bounded, conflating queue of undelivered events (touched under the hub lock)."""

    def __init__(self, ident: int, actor: Actor, limit: int) -> None:
        self.id = ident
        self.actor = actor
        self.limit = limit
        self.delivered = 0
        self.conflated = 0
        self.overflowed = 0
        # The seq the stream continues after: the `since` resumed from, or the hub's seq when attached.
        self.start = 0
        self._queue: OrderedDict[str, Event] = OrderedDict()
        self._resync: tuple[int, str] | None = None

    @property
    def pending(self) -> int:
        """Undelivered events (one per key)."""
        return len(self._queue) + (self._resync is not None)

    def _offer(self, event: Event) -> bool:
        """Queue `event`, replacing an older one of its key; return True when the queue was empty before."""
        was_empty = self.pending == 0
        if self._queue.pop(event.key, None) is not None:
            self.conflated += 1
        elif len(self._queue) >= self.limit:
            # A flood of distinct keys: drop the backlog and send the client to the REST lists instead.
            self.overflowed += len(self._queue)
            self._queue.clear()
            self._resync = (event.seq - 1, "overflow")
        self._queue[event.key] = event
        return was_empty

    def _take(self, limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._resync is not None:
            out.append(resync_message(*self._resync))
            self._resync = None
        while self._queue and len(out) < limit:
            _, event = self._queue.popitem(last=False)
            out.append(event.message())
        self.delivered += len(out)
        return out


class Hub:
    """Sequence, keep and route events; see the module docstring."""

    def __init__(
        self, district: District, *, origin: str, start_seq: int, ring_size: int = 10_000, queue_limit: int = 2_000
    ) -> None:
        self.district = district
        self.origin = origin
        self.queue_limit = queue_limit
        self.published = 0
        self.remote = 0
        self._seq = start_seq
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._subs: dict[int, Subscriber] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def seq(self) -> int:
        """The last seq assigned."""
        return self._seq

    @property
    def subscribers(self) -> int:
        """How many subscribers are attached."""
        return len(self._subs)

    def publish(self, change: Change, *, origin: str | None = None) -> tuple[Event, list[Subscriber]]:
        """Sequence `change` and route it; return the event and the subscribers whose queue just became non-empty."""
        woken: list[Subscriber] = []
        with self._lock:
            self._seq += 1
            # Read once per event for all subscribers; with none (the usual case under load), not at all.
            what = subject(change.type, change.data) if self._subs else None
            event = Event(self._seq, change.type, change.key, change.data, origin or self.origin, what)
            self._ring.append(event)
            self.published += 1
            if origin is not None and origin != self.origin:
                self.remote += 1
            for sub in self._subs.values():
                if may_see(sub.actor, event.subject_of(), self.district) and sub._offer(event):
                    woken.append(sub)
        return event, woken

    def subscribe(self, actor: Actor, since: int | None = None, *, hub: str | None = None) -> Subscriber:
        """Attach a subscriber; with `since`, queue the events after it (or a resync) before any new one."""
        with self._lock:
            sub = Subscriber(next(self._ids), actor, self.queue_limit)
            sub.start = self._seq if since is None else since
            if since is not None:
                oldest = self._ring[0].seq if self._ring else self._seq + 1
                if hub is not None and hub != self.origin:
                    sub._resync = (self._seq, "other_hub")
                elif since > self._seq:
                    sub._resync = (self._seq, "unknown_seq")
                elif since < oldest - 1:
                    sub._resync = (self._seq, "gap")
                else:
                    for event in self._after(since):
                        if may_see(actor, event.subject_of(), self.district):
                            sub._offer(event)
            self._subs[sub.id] = sub
        return sub

    def _after(self, since: int) -> Iterable[Event]:
        # The ring is contiguous in seq, so the start index is arithmetic.
        start = since - self._ring[0].seq + 1 if self._ring else 0
        return itertools.islice(self._ring, max(start, 0), None)

    def take(self, sub: Subscriber, limit: int = 500) -> list[dict[str, Any]]:
        """Pop up to `limit` messages of `sub`, oldest first (a pending resync first)."""
        with self._lock:
            return sub._take(limit)

    def stats(self) -> list[dict[str, Any]]:
        """Return each subscriber's user, pending, delivered, conflated and overflowed counts."""
        with self._lock:
            return [
                {
                    "user": s.actor.username,
                    "pending": s.pending,
                    "delivered": s.delivered,
                    "conflated": s.conflated,
                    "overflowed": s.overflowed,
                }
                for s in self._subs.values()
            ]

    def unsubscribe(self, sub: Subscriber) -> None:
        """Detach `sub` and drop what it had pending."""
        with self._lock:
            self._subs.pop(sub.id, None)
            sub._queue.clear()
            sub._resync = None
