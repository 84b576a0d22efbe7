"""One call to give a cloud process its live stream: the engine, district and broker settings in; a `Live` out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from cloud.incidents.engine import Incidents
from cloud.incidents.ports import District, Locator
from cloud.ingest.settings import IngestSettings
from cloud.live.fanout import Fanout
from cloud.live.hub import Hub
from cloud.live.settings import LiveSettings
from cloud.live.stream import Stream
from cloud.live.tap import Tap


def seed_seq(now_ms: int) -> int:
    """Return a hub's first seq: wall-clock ms x 1000, above any seq of an earlier run at < 1000 events/ms."""
    return now_ms * 1000


class Live:
    """A process's hub, stream, engine tap and (when a broker is configured) fan-out bridge."""

    def __init__(self, hub: Hub, stream: Stream, tap: Tap, fanout: Fanout | None) -> None:
        self.hub = hub
        self.stream = stream
        self.tap = tap
        self.fanout = fanout

    async def run(self) -> None:
        """Run the fan-out bridge until cancelled (returns at once without a broker)."""
        if self.fanout is not None:
            await self.fanout.run()


def attach_live(
    incidents: Incidents,
    district: District,
    clock: Callable[[], int],
    *,
    settings: LiveSettings | None = None,
    broker: IngestSettings | None = None,
    locator: Locator | None = None,
) -> Live:
    """Hook `incidents` into a new hub; fan out through `broker` when given and enabled."""
    settings = settings or LiveSettings()
    hub = Hub(
        district,
        origin=uuid.uuid4().hex,
        start_seq=seed_seq(time.time_ns() // 1_000_000),
        ring_size=settings.ring_size,
        queue_limit=settings.queue_limit,
    )
    stream = Stream(hub, outbox_limit=settings.outbox_limit)
    tap = Tap(incidents, stream, clock, locator=locator)
    tap.install()
    fanout = Fanout(stream, broker, settings.topic) if broker is not None and settings.fanout else None
    return Live(hub, stream, tap, fanout)
