"""Shared pieces of the incident tests: the bundled district, routing and standards, an engine, alerts, actors."""

from __future__ import annotations

from typing import Final

from cloud.db import Database
from cloud.grid import GridIndex, default_district, default_router
from cloud.incidents.engine import Incidents
from cloud.incidents.intake import DEFAULT_SETTINGS, IntakeSettings, RuleCategories
from cloud.incidents.policies import StandardsPolicies
from cloud.incidents.ports import Calendar, NaturalCalendar
from cloud.incidents.roles import Actor
from cloud.incidents.standards import Standards
from cloud.incidents.store import CaseStore
from gateway.alerts import AlertEvent, AlertState, Location

T0: Final = 1_767_574_800_000  # Monday 2026-01-05 09:00 in Asia/Shanghai (a working morning)
MIN: Final = 60_000
HOUR: Final = 3_600_000
DISTRICT: Final = default_district()
ROUTER: Final = default_router()
INDEX: Final = GridIndex(DISTRICT)
STANDARDS: Final = Standards.load()
GRID: Final = DISTRICT.grids[0].code  # 41010210100101, the seat grid
GRID2: Final = DISTRICT.grids[1].code  # same area
FAR_GRID: Final = DISTRICT.grids[-1].code  # another office
AREA: Final = DISTRICT.grids[0].parent or ""
OFFICE: Final = DISTRICT.territory(AREA).parent or ""
CATEGORIES: Final = RuleCategories(
    {
        "combustible_gas": "gas_leak",
        "gas_rate": "gas_leak",
        "well_level_high": "drainage_overflow",
        "pm25_high": "air_quality",
        "cover_tilt": "manhole_cover",
        "garbage_full": "garbage",
    },
    health_rules=frozenset({"gas_no_data", "level_no_data"}),
)

CENTER: Final = Actor("zhang", "shift_lead", DISTRICT.code)
ACCEPTOR: Final = Actor("li", "acceptor", DISTRICT.code)
DISPATCHER: Final = Actor("wang", "dispatcher", DISTRICT.code)
GAS_HANDLER: Final = Actor("zhao", "dept_handler", "RQGS")
GAS_LEAD: Final = Actor("qian", "dept_lead", "RQGS")
WATER_HANDLER: Final = Actor("sun", "dept_handler", "SWJ")
CG_HANDLER: Final = Actor("zhou", "dept_handler", "CGJ")
WORKER: Final = Actor("wu", "grid_worker", GRID)
WORKER2: Final = Actor("zheng", "grid_worker", GRID)
AREA_LEAD: Final = Actor("feng", "area_lead", AREA)
FAR_WORKER: Final = Actor("chen", "grid_worker", FAR_GRID)
LEADER: Final = Actor("chu", "leader", DISTRICT.code)
OPS: Final = Actor("wei", "maintenance", DISTRICT.code)
ADMIN: Final = Actor("root", "admin", DISTRICT.code)


def engine(
    db: Database | None = None,
    *,
    calendar: Calendar | None = None,
    settings: IntakeSettings = DEFAULT_SETTINGS,
) -> Incidents:
    """Return an engine on a fresh in-memory SQLite database (or `db`) with the bundled reference data."""
    store = CaseStore(db or Database.open(":memory:"))
    return Incidents(
        store,
        DISTRICT,
        StandardsPolicies(STANDARDS),
        ROUTER,
        CATEGORIES,
        calendar=calendar or NaturalCalendar(),
        locator=INDEX,
        settings=settings,
    )


def alert(
    rule: str,
    state: AlertState,
    ts: int,
    *,
    device: str = "gas-1",
    gateway: str = "gw-1",
    severity: int = 1,
    part: str | None = None,
    grid: str | None = GRID,
    value: float | None = 30.0,
) -> AlertEvent:
    """Return one alert of the seat grid (or `grid`)."""
    return AlertEvent(
        gateway, device, rule, state, severity, ts, value=value, location=Location(part_id=part, grid=grid)
    )


def snapshot(eng: Incidents) -> tuple[object, ...]:
    """Return every case, audit trail, key binding and kept alert of an engine, in a stable order."""
    cases = sorted(eng.cases(CENTER, limit=10_000), key=lambda c: c.id)
    trails = [eng.store.audit_trail(c.id) for c in cases]
    keys = [eng.store.key_statuses(c.id) for c in cases]
    alerts = eng.store.alerts_between(0, 2**62)
    return cases, trails, keys, sorted(alerts, key=lambda a: (a.ts_ms, a.fingerprint, a.state))
