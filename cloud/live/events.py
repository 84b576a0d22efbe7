"""Event payloads: a Case (with its light), an AlertEvent or a LivenessEvent in; (type, key, data) out."""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

from cloud.fleet import EventKind, LivenessEvent
from cloud.incidents.clocks import Clock
from cloud.incidents.model import Case
from gateway.alerts import AlertEvent

CASE: Final = "case"
ALERT: Final = "alert"
FLEET: Final = "fleet"
TYPES: Final = frozenset({CASE, ALERT, FLEET})

_CASE_FIELDS: Final = (
    "id",
    "kind",
    "source",
    "state",
    "category",
    "urgency",
    "title",
    "priority",
    "supervised",
    "grid",
    "area",
    "office",
    "district",
    "department",
    "assignee_kind",
    "assignee_code",
    "lat",
    "lon",
    "device",
    "gateway",
    "reported_ms",
    "updated_ms",
    "step_due_ms",
    "due_ms",
    "alert_count",
)


_case_fields: Final = itemgetter(*_CASE_FIELDS)


@dataclass(frozen=True, slots=True)
class Change:
    """One change to publish: its type, its conflation key (latest wins per key) and its JSON-able data."""

    type: str
    key: str
    data: dict[str, Any]


def case_change(case: Case, now: int) -> Change:
    """Describe a case's current state (with its traffic light at `now`)."""
    data = dict(zip(_CASE_FIELDS, _case_fields(case.__dict__), strict=True))
    data["light"] = Clock.light(case, now).value
    data["open"] = case.open
    return Change(CASE, f"case:{case.id}", data)


def alert_change(alert: AlertEvent, grid: str | None) -> Change:
    """Describe an alert state change; `grid` is its grid (from its location, or located)."""
    loc = alert.location
    data: dict[str, Any] = {
        "fingerprint": alert.fingerprint,
        "state": alert.state.value,
        "gateway": alert.gateway,
        "device": alert.device,
        "rule": alert.rule,
        "severity": alert.severity,
        "quantity": alert.quantity,
        "value": alert.value,
        "threshold": alert.threshold,
        "ts_ms": alert.ts_ms,
        "lat": loc.lat if loc is not None else None,
        "lon": loc.lon if loc is not None else None,
        "part_id": loc.part_id if loc is not None else None,
        "grid": grid,
    }
    return Change(ALERT, f"alert:{alert.fingerprint}", data)


def fleet_change(event: LivenessEvent) -> Change:
    """Describe a gateway going online/offline or a device going stale/fresh."""
    gateway_event = event.kind in (EventKind.GATEWAY_OFFLINE, EventKind.GATEWAY_ONLINE)
    key = f"gateway:{event.gateway}" if gateway_event else f"device:{event.device}"
    data: dict[str, Any] = {
        "kind": event.kind.value,
        "gateway": event.gateway,
        "device": event.device,
        "devices": list(event.devices),
        "reason": event.reason,
        "ts_ms": event.ts_ms,
        "last_seen_ms": event.last_seen_ms,
    }
    return Change(FLEET, key, data)
