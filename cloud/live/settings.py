"""Live stream settings: ring size, per-client queue bound and the broker fan-out topic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TOPIC = "gridwatch/live/events"


class LiveSettings(BaseModel):
    """How much history a hub keeps for resume, how much a slow client may have pending, and fan-out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ring_size: int = Field(10_000, ge=1)
    # Distinct keys (cases, alerts, gateways, devices) a client may have undelivered; updates to a pending
    # key replace it (conflation), so only a flood of distinct keys can fill it, and then the client resyncs.
    queue_limit: int = Field(2_000, ge=1)
    # Fan-out over the cloud's broker account; effective only when the service has a broker (ingest workers).
    fanout: bool = True
    topic: str = DEFAULT_TOPIC
    outbox_limit: int = Field(10_000, ge=1)
