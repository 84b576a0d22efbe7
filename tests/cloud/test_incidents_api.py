"""The incident API against the real app (httpx.ASGITransport, in process, no broker): scope, actions, silences, KPIs.

Pure-API tests: the app is `create_app(service, run_background=False)` on a real CloudService with its SQLite
database; alerts are handed to the engine's `handle`, the ingest AlertSink, as an ingest worker would.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import httpx

from cloud.api import create_app
from cloud.categories import HEALTH, load_categories
from cloud.grid import default_district
from cloud.incidents.kpis import compute
from cloud.incidents.roles import Actor
from cloud.incidents.standards import Standards
from cloud.service import CloudService, wall_ms
from cloud.settings import CloudSettings
from device_profiles.loader import load_profiles
from gateway.alerts import AlertEvent, AlertState, Location

DISTRICT: Final = default_district()
GRID: Final = DISTRICT.grids[0].code
FAR_GRID: Final = DISTRICT.grids[-1].code
PASSWORD: Final = "password-1"
# username → (role, scope)
USERS: Final = {
    "center": ("shift_lead", DISTRICT.code),
    "acceptor": ("acceptor", DISTRICT.code),
    "worker": ("grid_worker", GRID),
    "far": ("grid_worker", FAR_GRID),
    "cg": ("dept_handler", "CGJ"),
    "ops": ("maintenance", DISTRICT.code),
}


class Api:
    """One client per user of one in-process app."""

    def __init__(self, service: CloudService, transport: httpx.ASGITransport) -> None:
        self.service = service
        self.transport = transport
        self.clients: dict[str, httpx.AsyncClient] = {}

    def anonymous(self) -> httpx.AsyncClient:
        """Return a client without a token (Open311 is public)."""
        client = httpx.AsyncClient(transport=self.transport, base_url="http://gridwatch")
        self.clients[f"anon-{len(self.clients)}"] = client
        return client

    async def login(self, username: str, password: str = PASSWORD) -> httpx.AsyncClient:
        """Return a client carrying `username`'s bearer token."""
        client = httpx.AsyncClient(transport=self.transport, base_url="http://gridwatch")
        token = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        self.clients[username] = client
        return client

    async def aclose(self) -> None:
        """Close every client."""
        for client in self.clients.values():
            await client.aclose()


@contextlib.asynccontextmanager
async def api(tmp_path: Path) -> AsyncIterator[tuple[Api, dict[str, httpx.AsyncClient]]]:
    """Run the app in process; the admin creates the USERS through POST /api/v1/users; yield their clients."""
    settings = CloudSettings.model_validate(
        {"data_dir": str(tmp_path / "cloud"), "ingest_workers": 0, "admin_password": "admin-pw"}
    )
    service = CloudService(settings)
    rig = Api(service, httpx.ASGITransport(app=create_app(service, run_background=False)))
    try:
        admin = await rig.login("admin", "admin-pw")
        for name, (role, scope) in USERS.items():
            made = await admin.post(
                "/api/v1/users", json={"username": name, "password": PASSWORD, "role": role, "scope": scope}
            )
            assert made.status_code == 201, made.text
        yield rig, {name: await rig.login(name) for name in USERS}
    finally:
        await rig.aclose()
        service.close()


def fire(service: CloudService, rule: str, device: str, ts: int, *, grid: str = GRID, severity: int = 1) -> None:
    """Hand one firing alert to the engine, as ingest does."""
    alert = AlertEvent("gw-1", device, rule, AlertState.FIRING, severity, ts, value=30.0, location=Location(grid=grid))
    service.incidents.handle("gw-1", [alert])


async def act(client: httpx.AsyncClient, case_id: int, **body: Any) -> httpx.Response:
    """POST one action."""
    return await client.post(f"/api/v1/incidents/{case_id}/actions", json=body)


async def test_admin_creates_users_and_unknown_roles_are_refused(tmp_path: Path) -> None:
    """Only an admin creates users; an unknown role is refused with 409; governance roles are accepted."""
    async with api(tmp_path) as (rig, users):
        admin = rig.clients["admin"]
        bad = await admin.post("/api/v1/users", json={"username": "x", "password": PASSWORD, "role": "wizard"})
        assert bad.status_code == 409
        assert "unknown role" in bad.json()["detail"]["detail"]
        forbidden = await users["center"].post(
            "/api/v1/users", json={"username": "y", "password": PASSWORD, "role": "grid_worker"}
        )
        assert forbidden.status_code == 403


async def test_scripted_life_of_a_sensor_case_through_the_api(tmp_path: Path) -> None:
    """Alert → case seen by the center and the grid's worker (404 for another grid) → sign → handled → check → close."""
    async with api(tmp_path) as (rig, users):
        t0 = wall_ms() - 60_000
        fire(rig.service, "cover_tilted", "tilt-1", t0)
        listing = (await users["center"].get("/api/v1/incidents", params={"open_only": True})).json()
        assert listing["total"] == 1
        (case,) = listing["items"]
        case_id = case["id"]
        assert (case["category"], case["state"], case["department"]) == ("manhole_cover", "dispatched", "CGJ")
        assert (await users["worker"].get("/api/v1/incidents")).json()["total"] == 1
        assert (await users["far"].get("/api/v1/incidents")).json() == {"items": [], "total": 0}
        assert (await users["far"].get(f"/api/v1/incidents/{case_id}")).status_code == 404
        assert (await act(users["far"], case_id, kind="check", outcome="pass")).status_code == 404

        early = await act(users["cg"], case_id, kind="report_handled")
        assert early.status_code == 409
        assert early.json()["detail"]["reason"] == "state"
        signed = await act(users["cg"], case_id, kind="sign")
        assert signed.status_code == 200, signed.text
        assert signed.json()["state"] == "in_progress"
        handled = await act(users["cg"], case_id, kind="report_handled", evidence=["photo:cover-reseated"])
        assert handled.json()["state"] == "handled"
        own_check = await act(users["cg"], case_id, kind="check", outcome="pass")
        assert own_check.status_code == 409
        assert own_check.json()["detail"]["reason"] == "role"
        checked = await act(users["worker"], case_id, kind="check", outcome="pass", reason="cover seated")
        assert checked.json()["state"] == "checking"
        closed = await act(users["center"], case_id, kind="close", reason="verified")
        assert closed.json()["state"] == "closed"

        detail = (await users["worker"].get(f"/api/v1/incidents/{case_id}")).json()
        assert [e["action"] for e in detail["audit"]] == [
            "report",
            "accept",
            "register",
            "dispatch",
            "sign",
            "report_handled",
            "check",
            "close",
        ]
        assert [e["actor"] for e in detail["audit"][4:]] == ["cg", "cg", "worker", "center"]
        assert detail["alerts"][0]["rule"] == "cover_tilted"
        assert detail["light"] == "none"
        assert detail["case"]["handled_unit"] == "CGJ"
        assert (await users["center"].get("/api/v1/incidents", params={"state": "closed"})).json()["total"] == 1
        assert (await users["center"].get("/api/v1/incidents", params={"open_only": True})).json()["total"] == 0


async def test_manual_report_by_a_grid_worker_and_refusals(tmp_path: Path) -> None:
    """A grid worker reports in its grid (201), not outside it (409 scope); a maintenance user may not report."""
    async with api(tmp_path) as (_, users):
        made = await users["worker"].post(
            "/api/v1/incidents", json={"category": "garbage", "title": "overflowing bin", "grid": GRID}
        )
        assert made.status_code == 201, made.text
        assert (made.json()["source"], made.json()["state"]) == ("manual", "reported")
        outside = await users["worker"].post(
            "/api/v1/incidents", json={"category": "garbage", "title": "elsewhere", "grid": FAR_GRID}
        )
        assert outside.status_code == 409
        assert outside.json()["detail"]["reason"] == "scope"
        ops = await users["ops"].post("/api/v1/incidents", json={"category": "garbage", "title": "x", "grid": GRID})
        assert ops.json()["detail"]["reason"] == "role"
        accepted = await act(users["acceptor"], made.json()["id"], kind="accept")
        assert accepted.json()["state"] == "accepted"


async def test_silences_through_the_api_suppress_case_creation(tmp_path: Path) -> None:
    """A silence made via the API keeps a matching firing from opening a case; once expired, the next one does."""
    async with api(tmp_path) as (rig, users):
        now = wall_ms()
        refused = await users["worker"].post(
            "/api/v1/silences", json={"matchers": {"device": "tilt-9"}, "reason": "x", "ends_ms": now + 3_600_000}
        )
        assert refused.status_code == 403
        too_long = await users["ops"].post(
            "/api/v1/silences",
            json={"matchers": {"device": "tilt-9"}, "reason": "x", "ends_ms": now + 8 * 86_400_000},
        )
        assert too_long.status_code == 422
        made = await users["ops"].post(
            "/api/v1/silences",
            json={
                "matchers": {"device": "tilt-9"},
                "reason": "replacing the cover sensor",
                "starts_ms": now - 60_000,
                "ends_ms": now + 3_600_000,
            },
        )
        assert made.status_code == 201, made.text
        silence = made.json()
        assert (silence["owner"], silence["matchers"]) == ("ops", {"device": "tilt-9"})
        assert [s["id"] for s in (await users["center"].get("/api/v1/silences")).json()] == [silence["id"]]

        fire(rig.service, "cover_tilted", "tilt-9", now - 30_000)
        assert (await users["center"].get("/api/v1/incidents")).json()["total"] == 0
        kept = rig.service.incidents.store.alerts_between(now - 60_000, now, "silenced")
        assert [a.device for a in kept] == ["tilt-9"]

        ended = await users["ops"].delete(f"/api/v1/silences/{silence['id']}")
        assert ended.status_code == 200
        assert (await users["ops"].delete(f"/api/v1/silences/{silence['id']}")).status_code == 404
        assert (await users["ops"].get("/api/v1/silences")).json() == []
        fire(rig.service, "cover_tilted", "tilt-9", wall_ms() + 1000)
        assert (await users["center"].get("/api/v1/incidents")).json()["total"] == 1


async def test_kpis_endpoint_returns_the_definitions_numbers(tmp_path: Path) -> None:
    """Two sensor cases in one grid, one worked to closure: the endpoint's figures are the written definitions'."""
    async with api(tmp_path) as (rig, users):
        t0 = wall_ms() - 600_000
        fire(rig.service, "cover_tilted", "tilt-1", t0)
        fire(rig.service, "cover_tilted", "tilt-2", t0 + 1000)
        listing = (await users["center"].get("/api/v1/incidents")).json()["items"]
        first = min(c["id"] for c in listing)
        await act(users["cg"], first, kind="sign")
        await act(users["cg"], first, kind="report_handled")
        await act(users["worker"], first, kind="check", outcome="pass")
        await act(users["center"], first, kind="close")
        params: dict[str, Any] = {"unit": "grid", "from": t0, "to": wall_ms() + 1}
        figures = (await users["center"].get("/api/v1/kpis", params=params)).json()["items"][GRID]
        # By the definitions: 2 reported, both registered and due, 1 closed; both dispatched, 1 handled.
        assert (figures["reported"], figures["registered"], figures["due"], figures["closed"]) == (2, 2, 2, 1)
        assert (figures["dispatched"], figures["handled"], figures["sensor_cases"], figures["alerts"]) == (2, 1, 2, 2)
        assert (figures["closure_rate"], figures["handling_rate"], figures["alerts_per_case"]) == (0.5, 0.5, 1.0)
        assert figures["rework_rate"] == 0.0
        # The same numbers as computing the definitions over the stored cases.
        stored = rig.service.incidents.store.cases(Actor.system("test"), limit=10)
        assert figures == dataclasses.asdict(compute(stored))
        people = (await users["center"].get("/api/v1/kpis", params={**params, "unit": "person"})).json()["items"]
        assert (people["cg"]["signed"], people["cg"]["handled"]) == (1, 1)
        far = (await users["far"].get("/api/v1/kpis", params=params)).json()["items"]
        assert far == {}


def test_rule_categories_read_as_data_match_the_profile_loader() -> None:
    """The cloud's YAML reading of the profiles gives every categorized rule and health rule the loader sees."""
    profiles = load_profiles()
    rules = [r for p in profiles.values() for r in p.rules]
    categories = load_categories()
    assert categories.categories == {r.name: r.category for r in rules if r.category and r.recovery != HEALTH}
    assert categories.health_rules == {r.name for r in rules if r.recovery == HEALTH}
    known = set(Standards.load().categories())
    assert set(categories.categories.values()) <= known
    threshold = [r for r in rules if r.kind == "threshold" and r.recovery != HEALTH]
    assert all(r.name in categories.categories for r in threshold)


async def test_service_clock_tick_runs_escalations_and_the_timeline_shows_them(tmp_path: Path) -> None:
    """The service's clock tick (what its liveness loop runs each second) fires a sign-overdue escalation."""
    async with api(tmp_path) as (rig, users):
        now = wall_ms()
        fire(rig.service, "combustible_gas", "gas-1", now - 3 * 3_600_000)  # gas: sign within 30 min
        rig.service.clock_tick([], now)
        assert rig.service.escalations >= 1
        (case,) = (await users["center"].get("/api/v1/incidents")).json()["items"]
        detail = (await users["center"].get(f"/api/v1/incidents/{case['id']}")).json()
        assert "sign_overdue" in [e["kind"] for e in detail["escalations"]]
        assert detail["light"] == "red"  # the sign step (30 min) is long overdue
        metrics = (await rig.anonymous().get("/metrics")).text
        assert "gridwatch_escalations_total" in metrics
        assert 'gridwatch_events_total{kind="firing"} 1.0' in metrics
