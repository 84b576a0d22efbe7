"""The AlertEvent contract: a rule's state change for one device, keyed by its fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AlertState(StrEnum):
    """Where an alert stands: pending (held by `for`), firing, resolved, or stale (no data)."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a device is installed: position, part id (部件标识码) and grid code."""

    lat: float | None = None
    lon: float | None = None
    part_id: str | None = None
    grid: str | None = None

    def __reduce__(self) -> tuple[type[Location], tuple[float | None, float | None, str | None, str | None]]:
        """Pickle as the constructor's arguments (see AlertEvent.__reduce__)."""
        return Location, (self.lat, self.lon, self.part_id, self.grid)


def fingerprint(gateway: str, device: str, rule: str) -> str:
    """Return the fingerprint that identifies one rule on one device of one gateway."""
    return f"{gateway}/{device}/{rule}"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A rule's state change for one device at one event time (UTC ms)."""

    gateway: str
    device: str
    rule: str
    state: AlertState
    severity: int
    ts_ms: int
    quantity: str | None = None
    value: float | None = None
    threshold: float | None = None
    location: Location | None = None

    @property
    def fingerprint(self) -> str:
        """The (gateway, device, rule) key of this alert."""
        return fingerprint(self.gateway, self.device, self.rule)

    def __reduce__(self) -> tuple[type[AlertEvent], tuple[object, ...]]:
        """Pickle as the constructor's arguments: ingest's decoder processes send alerts back by pickle, and
        a slotted dataclass's default state is restored field by field through `fields()` (~3x the CPU)."""
        return AlertEvent, (
            self.gateway,
            self.device,
            self.rule,
            self.state,
            self.severity,
            self.ts_ms,
            self.quantity,
            self.value,
            self.threshold,
            self.location,
        )
