"""KPIs on a small hand-computed fixture: seven cases in two grids and two departments."""

from __future__ import annotations

import pytest

from cloud.incidents.kpis import by_person, by_unit
from cloud.incidents.model import AuditEntry, Case
from tests.incidents.incidents_rig import CENTER, DISTRICT, HOUR, T0, engine

H = HOUR
G1, G2 = DISTRICT.grids[0].code, DISTRICT.grids[1].code
AREA = DISTRICT.grids[0].parent


def case(n: int, grid: str, state: str, **kw: object) -> Case:
    """A governance case of the fixture (reported at T0 unless told)."""
    base: dict[str, object] = {
        "id": n,
        "kind": "governance",
        "source": "sensor",
        "state": state,
        "category": "gas_leak",
        "urgency": "normal",
        "reported_ms": T0,
        "updated_ms": T0,
        "grid": grid,
        "area": AREA,
        "office": "410102101",
        "district": "410102",
    }
    base.update(kw)
    return Case(**base)  # type: ignore[arg-type]


def dept(code: str, by: str | None = None) -> dict[str, object]:
    """Fields of a case dispatched to department `code` (and handled by `by`)."""
    out: dict[str, object] = {"assignee_kind": "department", "assignee_code": code, "department": code, "dispatches": 1}
    if by is not None:
        out.update(handled_unit=code, handled_by=by)
    return out


FIXTURE = [
    # 1: on time everywhere.
    case(
        1,
        G1,
        "closed",
        registered_ms=T0,
        signed_ms=T0 + 1 * H,
        handled_ms=T0 + 3 * H,
        handle_due_ms=T0 + 5 * H,
        closed_ms=T0 + 4 * H,
        due_ms=T0 + 24 * H,
        alert_count=3,
        **dept("RQGS", "zhao"),
    ),
    # 2: handled late, closed late, reworked once, extended once, on hold for 1 h.
    case(
        2,
        G1,
        "closed",
        registered_ms=T0,
        signed_ms=T0 + 2 * H,
        handled_ms=T0 + 10 * H,
        handle_due_ms=T0 + 8 * H,
        closed_ms=T0 + 30 * H,
        due_ms=T0 + 24 * H,
        reworks=1,
        extensions=1,
        paused_ms=1 * H,
        alert_count=1,
        **dept("RQGS", "zhao"),
    ),
    # 3: being handled.
    case(
        3, G1, "in_progress", registered_ms=T0, signed_ms=T0 + 4 * H, due_ms=T0 + 24 * H, alert_count=2, **dept("SWJ")
    ),
    # 4: a public report dispatched, not signed yet.
    case(4, G2, "dispatched", source="public", registered_ms=T0, due_ms=T0 + 24 * H, **dept("SWJ")),
    # 5: a sensor false alarm, never registered.
    case(5, G2, "cancelled", cancel_reason="false_alarm", alert_count=1),
    # 6: on hold (left out of 应结案数).
    case(6, G2, "on_hold", registered_ms=T0, signed_ms=T0 + 1 * H, due_ms=T0 + 24 * H, alert_count=1, **dept("SWJ")),
    # 7: a maintenance case never counts.
    case(7, G2, "dispatched", kind="maintenance", registered_ms=T0, alert_count=9),
]


def test_grid_kpis_match_the_hand_computation() -> None:
    """Per grid: counts, rates, MTTA/MTTR, false alarms, alerts per case and device online rate."""
    kpis = by_unit(FIXTURE, "grid", uptime={G1: (90, 100)})
    g1, g2 = kpis[G1], kpis[G2]
    assert (g1.reported, g1.registered, g1.due, g1.closed, g1.closed_on_time) == (3, 3, 3, 2, 1)
    assert (g1.dispatched, g1.handled, g1.handled_on_time, g1.reworked, g1.extended) == (3, 2, 1, 1, 1)
    assert g1.closure_rate == pytest.approx(2 / 3)
    assert g1.on_time_closure_rate == pytest.approx(1 / 3)
    assert g1.handling_rate == pytest.approx(2 / 3)
    assert g1.on_time_handling_rate == pytest.approx(1 / 3)
    assert g1.rework_rate == 0.5
    assert g1.extension_rate == pytest.approx(1 / 3)
    assert g1.mtta_ms == pytest.approx(7 / 3 * H)
    assert g1.mttr_ms == 6 * H
    assert (g1.false_alarm_rate, g1.alerts_per_case, g1.device_online_rate) == (0.0, 2.0, 0.9)
    assert (g2.reported, g2.registered, g2.due, g2.closed, g2.dispatched, g2.handled) == (3, 2, 1, 0, 1, 0)
    assert (g2.closure_rate, g2.handling_rate, g2.rework_rate, g2.extension_rate) == (0.0, 0.0, None, 0.0)
    assert (g2.mtta_ms, g2.mttr_ms, g2.false_alarm_rate, g2.alerts_per_case) == (1 * H, None, 0.5, 1.0)
    assert g2.device_online_rate is None


def test_department_and_area_kpis() -> None:
    """Per department the handling department counts; the area sums both grids."""
    depts = by_unit(FIXTURE, "department")
    assert sorted(depts) == ["RQGS", "SWJ"]
    assert (depts["RQGS"].closed, depts["RQGS"].closure_rate, depts["RQGS"].on_time_handling_rate) == (2, 1.0, 0.5)
    assert (depts["SWJ"].reported, depts["SWJ"].due, depts["SWJ"].handling_rate) == (3, 2, 0.0)
    (area,) = by_unit(FIXTURE, "area").values()
    assert (area.reported, area.registered, area.closed, area.sensor_cases, area.false_alarms) == (6, 5, 2, 5, 1)


def test_person_kpis_from_the_audit_trail() -> None:
    """A handler's handled cases, on-time rate, rework rate and MTTA from their 签收 entries."""
    audit = [
        AuditEntry(1, T0 + 1 * H, "zhao", "dept_handler", "sign", "dispatched", "in_progress"),
        AuditEntry(2, T0 + 2 * H, "zhao", "dept_handler", "sign", "dispatched", "in_progress"),
        AuditEntry(4, T0, "wu", "grid_worker", "report", "", "reported"),
        AuditEntry(1, T0, "system:routing", "system", "dispatch", "registered", "dispatched"),
    ]
    people = by_person(FIXTURE, audit)
    assert sorted(people) == ["wu", "zhao"]
    zhao = people["zhao"]
    assert (zhao.signed, zhao.handled, zhao.handled_on_time, zhao.reworked) == (2, 2, 1, 1)
    assert (zhao.on_time_handling_rate, zhao.rework_rate, zhao.mtta_ms) == (0.5, 0.5, 1.5 * H)
    assert people["wu"].reported == 1


def test_engine_kpis_are_scoped_to_the_caller() -> None:
    """Through the engine, a department lead's KPIs cover only its department's cases."""
    eng = engine()
    for c in FIXTURE:
        eng.store.insert(c)
    from cloud.incidents.roles import Actor

    everything = eng.kpis(CENTER, T0, T0 + 1, "grid")
    assert everything[G1].reported == 3
    assert everything[G2].reported == 3
    mine = eng.kpis(Actor("qian", "dept_lead", "RQGS"), T0, T0 + 1, "grid")
    assert list(mine) == [G1]
    assert mine[G1].reported == 2
