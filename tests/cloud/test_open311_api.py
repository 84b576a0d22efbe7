"""Open311 GeoReport v2 against the real app (httpx.ASGITransport, in process): field lists, filters, public loop."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cloud.service import wall_ms
from tests.cloud.test_incidents_api import DISTRICT, GRID, api, fire

# GeoReport v2 field lists with the JSON types each field may take.
SERVICE_FIELDS: Final[dict[str, tuple[type, ...]]] = {
    "service_code": (str,),
    "service_name": (str,),
    "description": (str,),
    "metadata": (bool,),
    "type": (str,),
    "keywords": (str,),
    "group": (str,),
}
REQUEST_FIELDS: Final[dict[str, tuple[type, ...]]] = {
    "service_request_id": (str,),
    "status": (str,),
    "status_notes": (str, type(None)),
    "service_name": (str,),
    "service_code": (str,),
    "description": (str, type(None)),
    "agency_responsible": (str, type(None)),
    "service_notice": (str, type(None)),
    "requested_datetime": (str,),
    "updated_datetime": (str, type(None)),
    "expected_datetime": (str, type(None)),
    "address": (str, type(None)),
    "address_id": (str, type(None)),
    "zipcode": (str, type(None)),
    "lat": (float, type(None)),
    "long": (float, type(None)),
    "media_url": (str, type(None)),
}


def conforms(item: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> None:
    """Assert every field is present with an allowed type, and datetimes carry an offset."""
    for name, types in fields.items():
        assert name in item, f"missing {name}"
        assert isinstance(item[name], types), f"{name}: {item[name]!r}"
        if name.endswith("_datetime") and item[name] is not None:
            assert datetime.fromisoformat(item[name]).utcoffset() is not None


def inside() -> tuple[float, float]:
    """Return (lat, lon) of a point inside the seat grid."""
    point = DISTRICT.territory(GRID).polygon.representative_point()
    return point.y, point.x


async def test_services_follow_the_georeport_field_list(tmp_path: Path) -> None:
    """services.json lists public categories with every field typed; a definition has attributes; unknown is 404."""
    async with api(tmp_path) as (rig, _):
        public = rig.anonymous()
        services = (await public.get("/open311/v2/services.json")).json()
        codes = [s["service_code"] for s in services]
        assert "garbage" in codes
        assert "manhole_cover" in codes
        assert "device_health" not in codes  # the maintenance queue
        assert "tunnel_gas" not in codes  # open311.service: false in the standards table
        for service in services:
            conforms(service, SERVICE_FIELDS)
            assert (service["metadata"], service["type"]) == (False, "realtime")
        garbage = next(s for s in services if s["service_code"] == "garbage")
        assert garbage["group"] == rig.service.directory.owner("garbage").name  # type: ignore[union-attr]
        definition = (await public.get("/open311/v2/services/garbage.json")).json()
        assert definition == {"service_code": "garbage", "attributes": []}
        missing = await public.get("/open311/v2/services/nope.json")
        assert missing.status_code == 404
        assert [set(e) for e in missing.json()] == [{"code", "description"}]


async def test_public_report_joins_the_loop_and_reads_back_as_georeport(tmp_path: Path) -> None:
    """A form POST opens a public case the acceptor works; requests.json shows it open, then closed when cancelled."""
    async with api(tmp_path) as (rig, users):
        public = rig.anonymous()
        lat, lon = inside()
        posted = await public.post(
            "/open311/v2/requests.json",
            data={
                "service_code": "garbage",
                "lat": str(lat),
                "long": str(lon),
                "description": "bins overflowing at the gate",
                "media_url": "https://example.org/p.jpg",
                "account_id": "a-17",
            },
        )
        assert posted.status_code == 200, posted.text
        ((receipt),) = posted.json()
        assert set(receipt) == {"service_request_id", "service_notice", "account_id"}
        assert receipt["account_id"] == "a-17"
        request_id = receipt["service_request_id"]

        inbox = (await users["acceptor"].get("/api/v1/incidents", params={"state": "reported"})).json()
        (case,) = inbox["items"]
        assert (str(case["id"]), case["source"], case["grid"]) == (request_id, "public", GRID)
        assert (await users["worker"].get(f"/api/v1/incidents/{case['id']}")).status_code == 200
        accepted = await users["acceptor"].post(f"/api/v1/incidents/{case['id']}/actions", json={"kind": "accept"})
        assert accepted.json()["state"] == "accepted"

        (one,) = (await public.get(f"/open311/v2/requests/{request_id}.json")).json()
        conforms(one, REQUEST_FIELDS)
        assert (one["status"], one["status_notes"], one["service_code"]) == ("open", "accepted", "garbage")
        assert one["media_url"] == "https://example.org/p.jpg"
        assert (one["lat"], one["long"]) == (lat, lon)
        assert one["expected_datetime"] is None  # not registered yet: no overall deadline

        cancelled = await users["acceptor"].post(
            f"/api/v1/incidents/{case['id']}/actions",
            json={"kind": "cancel", "reason": "already collected", "cancel_reason": "duplicate"},
        )
        assert cancelled.status_code == 200, cancelled.text
        closed = (await public.get("/open311/v2/requests.json", params={"status": "closed"})).json()
        assert [r["service_request_id"] for r in closed] == [request_id]
        assert closed[0]["status_notes"] == "cancelled: duplicate"
        assert (await public.get("/open311/v2/requests.json", params={"status": "open"})).json() == []


async def test_requests_filters_hide_sensor_cases_and_answer_errors_as_arrays(tmp_path: Path) -> None:
    """Sensor gas cases are hidden (standard says so), manhole ones shown; filters and errors follow GeoReport."""
    async with api(tmp_path) as (rig, _):
        public = rig.anonymous()
        now = wall_ms()
        fire(rig.service, "combustible_gas", "gas-1", now - 120_000)
        fire(rig.service, "cover_tilted", "tilt-1", now - 60_000)
        listing = (await public.get("/open311/v2/requests.json")).json()
        assert [r["service_code"] for r in listing] == ["manhole_cover"]
        conforms(listing[0], REQUEST_FIELDS)
        assert listing[0]["agency_responsible"] == rig.service.directory.department("CGJ").name
        assert listing[0]["expected_datetime"] is not None
        gas_id = next(c.id for c in rig.service.incidents.store.cases_between(0, now) if c.category == "gas_leak")
        assert (await public.get(f"/open311/v2/requests/{gas_id}.json")).status_code == 404
        ids = f"{gas_id},{listing[0]['service_request_id']}"
        by_id = (await public.get("/open311/v2/requests.json", params={"service_request_id": ids})).json()
        assert [r["service_request_id"] for r in by_id] == [listing[0]["service_request_id"]]
        later = datetime.fromisoformat(listing[0]["requested_datetime"]).isoformat()
        assert (await public.get("/open311/v2/requests.json", params={"service_code": "garbage"})).json() == []
        start = (await public.get("/open311/v2/requests.json", params={"start_date": later})).json()
        assert len(start) == 1
        end = (await public.get("/open311/v2/requests.json", params={"end_date": later})).json()
        assert end == []

        for params, data in (
            ({"status": "maybe"}, None),
            ({"start_date": "yesterday"}, None),
            (None, {"service_code": "nope", "lat": "34.8", "long": "113.5"}),
            (None, {"service_code": "garbage", "description": "no place"}),
        ):
            if data is None:
                answer = await public.get("/open311/v2/requests.json", params=params)
            else:
                answer = await public.post("/open311/v2/requests.json", data=data)
            assert answer.status_code == 400
            (err,) = answer.json()
            assert (err["code"], type(err["description"])) == (400, str)
