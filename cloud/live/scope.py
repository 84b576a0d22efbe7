"""Who sees an event: an Actor, an event's type and data, and the district in; True or False out.

Cases follow the one scope rule (`cloud.incidents.roles.visible`), read from the event's data so events
arriving from another API process over the broker are judged the same way. Alerts go to territory and
maintenance actors whose scope contains the alert's grid (an alert with no grid only to district-wide
actors). Fleet changes go to maintenance, admin and command roles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cloud.incidents.model import Case, new_case
from cloud.incidents.ports import District
from cloud.incidents.roles import TERRITORY_ROLES, Actor, Role, visible
from cloud.live.events import ALERT, CASE, FLEET

FLEET_ROLES: Final = frozenset({Role.MAINTENANCE, Role.SHIFT_LEAD, Role.LEADER, Role.ADMIN, Role.SYSTEM})
ALERT_ROLES: Final = TERRITORY_ROLES | {Role.MAINTENANCE}


@dataclass(frozen=True, slots=True)
class Subject:
    """What the scope rule reads of one event, built once per event (not per subscriber)."""

    type: str
    case: Case | None = None
    grid: str | None = None


def subject(type_: str, data: Mapping[str, Any]) -> Subject:
    """Read the scope-relevant fields of an event's data (a case's kind, place and department; an alert's grid)."""
    if type_ == CASE:
        case = new_case(  # Case's own __init__ sets 62 frozen fields one by one: several times the CPU
            id=int(data.get("id") or 0),
            kind=str(data.get("kind", "")),
            source="",
            state=str(data.get("state", "")),
            category="",
            urgency="",
            reported_ms=0,
            updated_ms=0,
            grid=data.get("grid"),
            district=data.get("district"),
            department=data.get("department"),
        )
        return Subject(type_, case=case)
    grid = data.get("grid")
    return Subject(type_, grid=grid if isinstance(grid, str) and grid else None)


def may_see(actor: Actor, what: Subject, district: District) -> bool:
    """Whether `actor` may receive an event about `what`."""
    if actor.role == Role.SYSTEM:
        return True
    if what.case is not None:
        return visible(actor, what.case, district)
    if what.type == ALERT:
        if actor.role not in ALERT_ROLES or not actor.scope:
            return False
        if what.grid is None:
            return actor.scope == district.code
        return district.contains(actor.scope, what.grid)
    if what.type == FLEET:
        return actor.role in FLEET_ROLES
    return False
