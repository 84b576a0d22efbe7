"""Open311 GeoReport v2 (JSON) under /open311/v2/: services from the standards table; requests as public cases.

The public reads governance cases of the whole district (maintenance cases never show), except the
sensor-sourced cases of categories whose standard sets `open311.hide_sensor_cases`. A public POST opens a
case with source=public that joins the same loop as any 上报. Errors are GeoReport error arrays.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse

from cloud.api.security import Service
from cloud.incidents.engine import CaseNotFound
from cloud.incidents.loop import ActionRefused
from cloud.incidents.model import Case, CaseState, Recovery, Source, Urgency
from cloud.incidents.roles import Actor, Role
from cloud.incidents.standards import StandardsError
from cloud.incidents.store import CaseFilter
from cloud.service import CloudService, wall_ms

router = APIRouter(prefix="/open311/v2")
ZONE: Final = ZoneInfo("Asia/Shanghai")  # the district's local time: GeoReport datetimes carry their offset
MAX_RESULTS: Final = 1000
PUBLIC_REPORTER: Final = Actor("open311:public", "public", "")


def reader(svc: CloudService) -> Actor:
    """The actor public reads run as: the whole district's governance cases (scope applied in SQL)."""
    return Actor("open311:reader", Role.LEADER.value, svc.district.code)


def error(code: int, description: str) -> JSONResponse:
    """Return a GeoReport error array with the same HTTP status."""
    return JSONResponse([{"code": code, "description": description}], status_code=code)


def iso(ms: int | None) -> str | None:
    """Return an ISO 8601 datetime with its offset, in the district's zone."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=ZONE).isoformat(timespec="seconds")


def parse_iso(text: str) -> int:
    """Return UTC ms of an ISO 8601 datetime (a naive one is district local time)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZONE)
    return int(moment.timestamp() * 1000)


def listed(svc: CloudService, code: str) -> bool:
    """Whether a category is an Open311 service (in the table, public, and not the maintenance queue)."""
    try:
        doc = svc.standards.describe(code)
    except StandardsError:
        return False
    return doc.open311.service and doc.recovery.policy is not Recovery.DEVICE_HEALTH


def service_json(svc: CloudService, code: str) -> dict[str, Any]:
    """Return one services.json entry."""
    doc = svc.standards.describe(code)
    owner = svc.directory.owner(code)
    return {
        "service_code": code,
        "service_name": doc.name,
        "description": doc.name_en,
        "metadata": False,
        "type": "realtime",
        "keywords": ",".join((code, doc.name_en.lower())),
        "group": owner.name if owner is not None else "",
    }


def hidden(svc: CloudService, case: Case) -> bool:
    """Whether a sensor-sourced case is kept off Open311 by its category's standard."""
    if case.source != Source.SENSOR:
        return False
    try:
        return svc.standards.describe(case.category).open311.hide_sensor_cases
    except StandardsError:
        return False


def request_json(svc: CloudService, case: Case) -> dict[str, Any]:
    """Return one requests.json entry."""
    agency = ""
    if case.department:
        agency = next((d.name for d in svc.directory.departments if d.code == case.department), case.department)
    try:
        name = svc.standards.describe(case.category).name
    except StandardsError:
        name = case.category
    address = svc.district.territory(case.grid).name if case.grid is not None else ""
    media = None
    if case.source == Source.PUBLIC:
        trail = svc.incidents.store.audit_trail(case.id)
        notes = trail[0].evidence if trail else ()
        address = next((n.removeprefix("address:") for n in notes if n.startswith("address:")), address)
        media = next((n.removeprefix("media:") for n in notes if n.startswith("media:")), None)
    notes_text = case.state if case.cancel_reason is None else f"{case.state}: {case.cancel_reason}"
    return {
        "service_request_id": str(case.id),
        "status": "open" if case.open else "closed",
        "status_notes": notes_text,
        "service_name": name,
        "service_code": case.category,
        "description": case.title,
        "agency_responsible": agency,
        "service_notice": "",
        "requested_datetime": iso(case.reported_ms),
        "updated_datetime": iso(case.updated_ms),
        "expected_datetime": iso(case.due_ms),
        "address": address,
        "address_id": case.part_id or "",
        "zipcode": "",
        "lat": case.lat,
        "long": case.lon,
        "media_url": media,
    }


@router.get("/services.json")
def services(svc: Service) -> list[dict[str, Any]]:
    """List the categories the public may report."""
    return [service_json(svc, code) for code in svc.standards.categories() if listed(svc, code)]


@router.get("/services/{code}.json", response_model=None)
def service_definition(code: str, svc: Service) -> dict[str, Any] | JSONResponse:
    """Return a service definition (no extra attributes)."""
    if not listed(svc, code):
        return error(status.HTTP_404_NOT_FOUND, f"no service {code!r}")
    return {"service_code": code, "attributes": []}


@router.get("/requests.json", response_model=None)
def requests(
    svc: Service,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    state: Annotated[str | None, Query(alias="status")] = None,
) -> list[dict[str, Any]] | JSONResponse:
    """List public requests with GeoReport filters (ids, service_code, start/end date, status)."""
    if state not in (None, "open", "closed"):
        return error(status.HTTP_400_BAD_REQUEST, "status is open or closed")
    try:
        start = parse_iso(start_date) if start_date else None
        end = parse_iso(end_date) if end_date else None
    except ValueError:
        return error(status.HTTP_400_BAD_REQUEST, "start_date and end_date are ISO 8601 datetimes")
    actor = reader(svc)
    if service_request_id:
        cases: list[Case] = []
        for text in service_request_id.split(","):
            if text.strip().isdigit():
                try:
                    cases.append(svc.incidents.case(actor, int(text)))
                except CaseNotFound:
                    continue
    else:
        flt = CaseFilter(category=service_code, reported_from_ms=start, reported_to_ms=end, open_only=state == "open")
        cases = svc.incidents.cases(actor, flt, limit=MAX_RESULTS)
    out = []
    for case in cases:
        if hidden(svc, case) or (state == "closed" and case.open) or (state == "open" and not case.open):
            continue
        out.append(request_json(svc, case))
    return out


@router.get("/requests/{request_id}.json", response_model=None)
def one_request(request_id: str, svc: Service) -> list[dict[str, Any]] | JSONResponse:
    """Return one request (as a one-element array, per GeoReport)."""
    if not request_id.isdigit():
        return error(status.HTTP_404_NOT_FOUND, f"no request {request_id!r}")
    try:
        case = svc.incidents.case(reader(svc), int(request_id))
    except CaseNotFound:
        return error(status.HTTP_404_NOT_FOUND, f"no request {request_id!r}")
    if hidden(svc, case):
        return error(status.HTTP_404_NOT_FOUND, f"no request {request_id!r}")
    return [request_json(svc, case)]


def _float(form: dict[str, str], key: str) -> float | None:
    value = form.get(key, "").strip()
    return float(value) if value else None


@router.post("/requests.json", response_model=None)
async def create_request(request: Request, svc: Service) -> list[dict[str, Any]] | JSONResponse:
    """Open a public report (form-encoded, as GeoReport v2 posts; JSON also accepted)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        form = {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    else:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    code = form.get("service_code", "")
    if not listed(svc, code):
        return error(status.HTTP_400_BAD_REQUEST, f"service_code {code!r} is not a service")
    try:
        lat, lon = _float(form, "lat"), _float(form, "long")
    except ValueError:
        return error(status.HTTP_400_BAD_REQUEST, "lat and long are decimal degrees")
    address = form.get("address_string", "").strip()
    if (lat is None or lon is None) and not address:
        return error(status.HTTP_400_BAD_REQUEST, "a location is required: lat and long, or address_string")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return error(status.HTTP_400_BAD_REQUEST, "lat and long are out of range")
    description = form.get("description", "").strip()[:4000]
    evidence = tuple(
        f"{tag}:{form[key]}" for tag, key in (("address", "address_string"), ("media", "media_url")) if form.get(key)
    )
    try:
        case = svc.incidents.report(
            PUBLIC_REPORTER,
            code,
            Urgency.NORMAL,
            wall_ms(),
            title=description or svc.standards.describe(code).name,
            lat=lat,
            lon=lon,
            source=Source.PUBLIC,
            evidence=evidence,
        )
    except ActionRefused as exc:
        return error(status.HTTP_400_BAD_REQUEST, str(exc))
    notice = "received" if case.state == CaseState.REPORTED else case.state
    return [{"service_request_id": str(case.id), "service_notice": notice, "account_id": form.get("account_id")}]
