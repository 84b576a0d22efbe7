"""Incident routes: cases (list, detail with timeline, actions, manual report), grids, KPIs and silences.

Every read and write goes through the engine with the caller as an Actor, so the role's data scope is
applied in the SQL of each query (a case outside the scope answers 404, as if it did not exist).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.security import Service, current_user
from cloud.auth import INCIDENT_ROLE, User
from cloud.incidents.engine import CaseNotFound, Timeline
from cloud.incidents.loop import ActionRefused
from cloud.incidents.model import Action, ActionKind, Assignee, CancelReason, Case, Outcome, Urgency
from cloud.incidents.roles import Actor, Role
from cloud.incidents.silences import Matchers, Silence, SilenceError
from cloud.incidents.store import CaseFilter, StaleCase
from cloud.service import wall_ms

router = APIRouter(prefix="/api/v1")
SILENCE_READERS = frozenset({Role.MAINTENANCE, Role.SHIFT_LEAD, Role.LEADER, Role.DISPATCHER, Role.ACCEPTOR})


def actor_of(user: Annotated[User, Depends(current_user)]) -> Actor:
    """Return the incident layer's actor for the authenticated user (fleet maintainers work as 运维)."""
    return Actor(user.username, INCIDENT_ROLE.get(user.role, user.role), user.scope)


Caller = Annotated[Actor, Depends(actor_of)]


def refused(exc: ActionRefused | StaleCase) -> HTTPException:
    """Translate a refused action (or a lost race) into 409 with its stable reason."""
    reason = exc.reason if isinstance(exc, ActionRefused) else "stale"
    return HTTPException(status.HTTP_409_CONFLICT, {"reason": reason, "detail": str(exc)})


def not_found(case_id: int) -> HTTPException:
    """The same answer for a missing case and a case outside the caller's scope."""
    return HTTPException(status.HTTP_404_NOT_FOUND, {"reason": "not_found", "detail": f"no case {case_id}"})


def case_json(case: Case) -> dict[str, Any]:
    """Return a case as JSON (every field)."""
    return dict(case.__dict__)


def timeline_json(timeline: Timeline) -> dict[str, Any]:
    """Return the detail view: the case, its traffic light, audit trail, alerts and escalations."""
    return {
        "case": case_json(timeline.case),
        "light": timeline.light.value,
        "audit": [dataclasses.asdict(e) for e in timeline.audit],
        "alerts": [dataclasses.asdict(a) for a in timeline.alerts],
        "escalations": [dataclasses.asdict(e) for e in timeline.escalations],
    }


class AssigneeIn(BaseModel):
    """Who a case is dispatched to."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["department", "grid_team", "maintenance"]
    code: str = Field(min_length=1)


class ActionIn(BaseModel):
    """One action on a case."""

    model_config = ConfigDict(extra="forbid")
    kind: ActionKind
    reason: str = ""
    evidence: list[str] = []
    outcome: Outcome | None = None
    assignee: AssigneeIn | None = None
    cancel_reason: CancelReason | None = None
    extend_ms: int = Field(0, ge=0)

    def action(self) -> Action:
        """Return the engine's Action."""
        assignee = Assignee(self.assignee.kind, self.assignee.code) if self.assignee is not None else None
        return Action(
            self.kind,
            self.reason,
            tuple(self.evidence),
            self.outcome,
            assignee,
            self.cancel_reason,
            self.extend_ms,
        )


class ReportIn(BaseModel):
    """A case reported by a person (grid worker, acceptor, command center)."""

    model_config = ConfigDict(extra="forbid")
    category: str = Field(min_length=1)
    urgency: Urgency = Urgency.NORMAL
    title: str = Field(min_length=1, max_length=500)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    grid: str | None = None
    evidence: list[str] = []


class SilenceIn(BaseModel):
    """A maintenance window: matchers, a reason and its window (UTC ms; starts now by default)."""

    model_config = ConfigDict(extra="forbid")
    matchers: dict[Literal["device", "gateway", "category", "grid", "rule"], str]
    reason: str = Field(min_length=1)
    starts_ms: int | None = None
    ends_ms: int


@router.get("/incidents")
def list_incidents(
    svc: Service,
    actor: Caller,
    state: str | None = None,
    open_only: bool = False,
    kind: str | None = None,
    category: str | None = None,
    grid: str | None = None,
    department: str | None = None,
    from_ms: Annotated[int | None, Query(alias="from")] = None,
    to_ms: Annotated[int | None, Query(alias="to")] = None,
    supervised: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """List the cases the caller may see, newest first, with the total count of the filter."""
    flt = CaseFilter(state, open_only, kind, category, grid, department, from_ms, to_ms, supervised)
    items = svc.incidents.cases(actor, flt, limit=limit, offset=offset)
    return {"items": [case_json(c) for c in items], "total": svc.incidents.count(actor, flt)}


@router.get("/incidents/{case_id}")
def get_incident(case_id: int, svc: Service, actor: Caller) -> dict[str, Any]:
    """Return one case with its timeline (audit, alerts, escalations, traffic light)."""
    try:
        return timeline_json(svc.incidents.timeline(actor, case_id, wall_ms()))
    except CaseNotFound as exc:
        raise not_found(case_id) from exc


@router.post("/incidents/{case_id}/actions")
def act(case_id: int, body: ActionIn, svc: Service, actor: Caller) -> dict[str, Any]:
    """Apply one action to a case; 409 with the reason when the loop refuses it."""
    try:
        return case_json(svc.incidents.act(case_id, body.action(), actor, wall_ms()))
    except CaseNotFound as exc:
        raise not_found(case_id) from exc
    except (ActionRefused, StaleCase) as exc:
        raise refused(exc) from exc


@router.post("/incidents", status_code=status.HTTP_201_CREATED)
def report(body: ReportIn, svc: Service, actor: Caller) -> dict[str, Any]:
    """Report a case by hand (上报)."""
    try:
        case = svc.incidents.report(
            actor,
            body.category,
            body.urgency,
            wall_ms(),
            title=body.title,
            lat=body.lat,
            lon=body.lon,
            grid=body.grid,
            evidence=tuple(body.evidence),
        )
    except ActionRefused as exc:
        raise refused(exc) from exc
    return case_json(case)


@router.get("/grids")
def grids(svc: Service, _: Caller, level: Literal["district", "office", "area", "grid"] | None = None) -> Any:
    """Return the district's territory tree as GeoJSON (one level, or all)."""
    return svc.district.geojson(level)


@router.get("/map")
def map_settings(svc: Service, _: Caller) -> dict[str, Any]:
    """Return how the page draws its map: the optional XYZ tile server under the grid polygons."""
    settings = svc.settings.map
    return {
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        "tile_max_zoom": settings.tile_max_zoom,
    }


@router.get("/kpis")
def kpis(
    svc: Service,
    actor: Caller,
    unit: Literal["grid", "area", "office", "department", "district", "person"] = "grid",
    from_ms: Annotated[int, Query(alias="from")] = 0,
    to_ms: Annotated[int | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Return KPIs per unit (or person) over the visible cases reported in [from, to)."""
    end = wall_ms() + 1 if to_ms is None else to_ms
    if unit == "person":
        people = svc.incidents.person_kpis(actor, from_ms, end)
        items = {k: dataclasses.asdict(v) for k, v in people.items()}
    else:
        units = svc.incidents.kpis(actor, from_ms, end, unit)
        items = {k: dataclasses.asdict(v) for k, v in units.items()}
    return {"unit": unit, "from": from_ms, "to": end, "items": items}


def silence_json(silence: Silence) -> dict[str, Any]:
    """Return a silence as JSON (matchers as a mapping)."""
    out = dataclasses.asdict(silence)
    out["matchers"] = {k: v for k, v in out["matchers"].items() if v is not None}
    return out


@router.get("/silences")
def list_silences(svc: Service, actor: Caller, include_ended: bool = False) -> list[dict[str, Any]]:
    """List maintenance windows (运维, 值班长, 领导, 受理员, 派遣员)."""
    if actor.role not in SILENCE_READERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {actor.role!r} may not read silences")
    return [silence_json(s) for s in svc.incidents.silences.listing(wall_ms(), include_ended=include_ended)]


@router.post("/silences", status_code=status.HTTP_201_CREATED)
def add_silence(body: SilenceIn, svc: Service, actor: Caller) -> dict[str, Any]:
    """Create a maintenance window (运维 or 值班长); it ends at most 7 days out."""
    now = wall_ms()
    try:
        silence = svc.incidents.add_silence(
            actor, Matchers(**body.matchers), body.reason, body.starts_ms or now, body.ends_ms, now
        )
    except ActionRefused as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, {"reason": exc.reason, "detail": str(exc)}) from exc
    except SilenceError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"reason": "invalid", "detail": str(exc)}) from exc
    return silence_json(silence)


@router.delete("/silences/{silence_id}")
def expire_silence(silence_id: int, svc: Service, actor: Caller) -> dict[str, Any]:
    """End a maintenance window now."""
    try:
        ended = svc.incidents.expire_silence(actor, silence_id, wall_ms())
    except ActionRefused as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, {"reason": exc.reason, "detail": str(exc)}) from exc
    if not ended:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, {"reason": "not_found", "detail": f"no active silence {silence_id}"}
        )
    return {"id": silence_id, "expired": True}
