"""Alert → case: dedup, recurrence, grouping, silences, inhibition, emergencies, replays and recovery."""

from __future__ import annotations

import pytest

from cloud.fleet import EventKind, LivenessEvent
from cloud.incidents.model import Action, ActionKind, CaseKind, CaseState, Outcome
from cloud.incidents.silences import Matchers, SilenceError
from cloud.incidents.store import CaseFilter
from gateway.alerts import AlertState
from tests.incidents.incidents_rig import (
    CENTER,
    GAS_HANDLER,
    GRID,
    GRID2,
    HOUR,
    LEADER,
    MIN,
    OPS,
    T0,
    WATER_HANDLER,
    WORKER,
    alert,
    engine,
)

F, R, S = AlertState.FIRING, AlertState.RESOLVED, AlertState.STALE
GOV = CaseFilter(kind=CaseKind.GOVERNANCE.value)
MAINT = CaseFilter(kind=CaseKind.MAINTENANCE.value)


def test_repeated_firings_of_one_alert_key_make_one_case() -> None:
    """Re-firings (level 1 then level 2) of one device and rule family join the open case and raise its urgency."""
    eng = engine()
    eng.handle("gw-1", [alert("combustible_gas", F, T0)])
    eng.handle("gw-1", [alert("combustible_gas", F, T0 + MIN, severity=2, value=55.0)])
    eng.handle("gw-1", [alert("combustible_gas", F, T0 + 20 * MIN)])
    (case,) = eng.cases(CENTER)
    assert (case.alert_count, case.urgency) == (3, "urgent")
    assert [a.disposition for a in eng.store.alerts_of(case.id)] == ["case", "case", "case"]


def test_ingest_replay_changes_nothing() -> None:
    """The same envelope handed twice (a crash before the ledger commit) is recognised and counted as replayed."""
    eng = engine()
    batch = [alert("combustible_gas", F, T0), alert("combustible_gas", F, T0)]
    eng.handle("gw-1", batch)
    eng.handle("gw-1", batch)
    (case,) = eng.cases(CENTER)
    assert case.alert_count == 1
    assert eng.intake.counts["replayed"] == 3


def test_a_firing_after_closure_opens_a_recurrence() -> None:
    """Once the case is closed, the next firing opens a new case linked to it."""
    eng = engine()
    eng.handle("gw-1", [alert("combustible_gas", F, T0)])
    (first,) = eng.cases(CENTER)
    eng.act(first.id, Action(ActionKind.SIGN), GAS_HANDLER, T0 + MIN)
    eng.act(first.id, Action(ActionKind.REPORT_HANDLED), GAS_HANDLER, T0 + HOUR)
    eng.handle("gw-1", [alert("combustible_gas", R, T0 + HOUR + MIN)])
    eng.act(first.id, Action(ActionKind.CHECK, outcome=Outcome.PASS), WORKER, T0 + 2 * HOUR)
    eng.act(first.id, Action(ActionKind.CLOSE), CENTER, T0 + 2 * HOUR)
    eng.handle("gw-1", [alert("combustible_gas", F, T0 + 3 * HOUR)])
    second, closed = eng.cases(CENTER)
    assert closed.id == first.id
    assert closed.recovered_ms == T0 + HOUR + MIN
    assert second.recurrence_of == first.id
    assert second.state == CaseState.DISPATCHED


def test_alerts_of_one_part_within_the_window_group_into_one_case() -> None:
    """Two rules of one part (gas level and gas rate) within the grouping window are one case; later, a new case."""
    eng = engine()
    part = "4101020101000123"
    eng.handle("gw-1", [alert("combustible_gas", F, T0, part=part)])
    eng.handle("gw-1", [alert("gas_rate", F, T0 + 5 * MIN, device="gas-2", part=part)])
    assert eng.count(CENTER) == 1
    eng.handle("gw-1", [alert("gas_rate", F, T0 + HOUR, device="gas-3", part="4101020101000999")])
    assert eng.count(CENTER) == 2


def test_area_phenomena_group_by_grid_and_category() -> None:
    """Air-quality alerts of two stations in one grid are one case; a station in the next grid opens its own."""
    eng = engine()
    eng.handle("gw-1", [alert("pm25_high", F, T0, device="aq-1")])
    eng.handle("gw-1", [alert("pm25_high", F, T0 + 2 * MIN, device="aq-2")])
    eng.handle("gw-1", [alert("pm25_high", F, T0 + 3 * MIN, device="aq-3", grid=GRID2)])
    cases = eng.cases(CENTER)
    assert sorted((c.grid, c.alert_count) for c in cases) == [(GRID, 2), (GRID2, 1)]


def test_silenced_alerts_are_kept_and_open_no_case() -> None:
    """A maintenance window on one device mutes its firing alerts (kept as silenced); others still open cases."""
    eng = engine()
    silence = eng.add_silence(OPS, Matchers(device="gas-1"), "recalibration", T0, T0 + 2 * HOUR, T0)
    eng.handle("gw-1", [alert("combustible_gas", F, T0 + MIN), alert("combustible_gas", F, T0 + MIN, device="gas-9")])
    assert [c.device for c in eng.cases(CENTER)] == ["gas-9"]
    kept = eng.store.alerts_between(T0, T0 + HOUR, "silenced")
    assert [(a.device, a.disposition) for a in kept] == [("gas-1", f"silenced:{silence.id}")]
    assert eng.expire_silence(OPS, silence.id, T0 + 10 * MIN)
    eng.handle("gw-1", [alert("combustible_gas", F, T0 + 11 * MIN)])
    assert eng.count(CENTER) == 2


def test_silences_by_territory_cover_every_grid_inside() -> None:
    """A silence on an area code matches alerts of any grid in that area."""
    eng = engine()
    area = eng.ctx.district.ancestors(GRID)[0].code
    eng.add_silence(OPS, Matchers(grid=area, category="air_quality"), "sensor swap", T0, T0 + HOUR, T0)
    eng.handle("gw-1", [alert("pm25_high", F, T0 + MIN, device="aq-1"), alert("pm25_high", F, T0, grid=GRID2)])
    assert eng.count(CENTER) == 0


@pytest.mark.parametrize(
    ("matchers", "ends", "who"),
    [
        (Matchers(), HOUR, OPS),
        (Matchers(device="gas-1"), 8 * 24 * HOUR, OPS),
        (Matchers(device="gas-1"), -MIN, OPS),
    ],
)
def test_bad_silences_are_refused(matchers: Matchers, ends: int, who: object) -> None:
    """A silence needs a matcher and must end after now and at most 7 days out."""
    with pytest.raises(SilenceError):
        engine().add_silence(OPS, matchers, "x", T0, T0 + ends, T0)


def test_only_maintenance_and_the_shift_lead_create_silences() -> None:
    """A grid worker may not silence alerts."""
    from cloud.incidents.loop import ActionRefused

    with pytest.raises(ActionRefused):
        engine().add_silence(WORKER, Matchers(device="gas-1"), "x", T0, T0 + HOUR, T0)


def test_a_gateway_outage_is_one_maintenance_case_not_a_storm() -> None:
    """Gateway offline → one maintenance case; its 20 devices' stale and no-data alerts are inhibited into it."""
    eng = engine()
    devices = tuple(f"dev-{i:02d}" for i in range(20))
    offline = LivenessEvent(EventKind.GATEWAY_OFFLINE, "gw-1", T0, "will", devices=devices)
    eng.liveness_events([offline])
    eng.liveness_events([LivenessEvent(EventKind.DEVICE_STALE, "gw-1", T0 + MIN, "silent", device=d) for d in devices])
    eng.handle("gw-1", [alert("gas_no_data", F, T0 + 2 * MIN, device=d) for d in devices])
    eng.handle("gw-1", [alert("combustible_gas", S, T0 + 2 * MIN, device=d) for d in devices])
    (outage,) = eng.cases(OPS, MAINT)
    assert eng.count(OPS) == 1
    assert eng.count(CENTER) == 0
    assert outage.gateway == "gw-1"
    assert outage.state == CaseState.DISPATCHED
    assert outage.assignee_code == "YW"
    linked = eng.store.alerts_of(outage.id)
    assert len(linked) == 61
    assert sum(a.disposition.startswith("inhibited") for a in linked) == 60
    online = LivenessEvent(EventKind.GATEWAY_ONLINE, "gw-1", T0 + 10 * MIN, "heartbeat", devices=devices)
    eng.liveness_events([online])
    done = eng.store.get(outage.id)
    assert done is not None
    assert (done.state, done.cancel_reason) == ("cancelled", "transient")


def test_a_signed_maintenance_case_is_closed_by_recovery() -> None:
    """A device-health case the maintenance team signed for closes itself when the device is fresh again."""
    eng = engine()
    eng.liveness_events([LivenessEvent(EventKind.DEVICE_STALE, "gw-1", T0, "silent", device="gas-1")])
    (case,) = eng.cases(OPS)
    eng.act(case.id, Action(ActionKind.SIGN), OPS, T0 + MIN)
    eng.liveness_events([LivenessEvent(EventKind.DEVICE_FRESH, "gw-1", T0 + HOUR, "reading", device="gas-1")])
    done = eng.case(OPS, case.id)
    assert (done.state, done.recovered_ms) == ("closed", T0 + HOUR)
    assert eng.store.audit_trail(case.id)[-1].actor == "system:recovery"


def test_stale_is_never_recovery() -> None:
    """A stale alert on a governance case marks it stale (evidence) and opens device maintenance; no recovery."""
    eng = engine()
    eng.handle("gw-1", [alert("well_level_high", F, T0, device="lvl-1")])
    (case,) = eng.cases(CENTER)
    eng.handle("gw-1", [alert("well_level_high", S, T0 + 10 * MIN, device="lvl-1")])
    again = eng.case(CENTER, case.id)
    assert again.recovered_ms is None
    assert again.state == CaseState.DISPATCHED
    assert eng.store.key_statuses(case.id) == {"device:lvl-1/drainage_overflow/well_level_high": "stale"}
    assert eng.store.audit_trail(case.id)[-1].detail == {"evidence": "stale"}
    assert eng.count(OPS) == 1


def test_sensor_sufficient_case_is_checked_by_the_system_and_closes_after_the_veto_window() -> None:
    """Drainage: handled + recovered for 30 min → system 核查; closed after the 2 h veto window by system:recovery."""
    eng = engine()
    eng.handle("gw-1", [alert("well_level_high", F, T0, device="lvl-1")])
    (case,) = eng.cases(CENTER)
    eng.act(case.id, Action(ActionKind.SIGN), WATER_HANDLER, T0 + 5 * MIN)
    eng.handle("gw-1", [alert("well_level_high", R, T0 + 40 * MIN, device="lvl-1")])
    eng.act(case.id, Action(ActionKind.REPORT_HANDLED), WATER_HANDLER, T0 + HOUR)
    assert eng.case(CENTER, case.id).auto_check_ms == T0 + 70 * MIN
    assert eng.tick(T0 + 69 * MIN) == []
    assert eng.case(CENTER, case.id).state == CaseState.HANDLED
    eng.tick(T0 + 70 * MIN)
    checked = eng.case(CENTER, case.id)
    assert (checked.state, checked.veto_until_ms) == ("checking", T0 + 190 * MIN)
    eng.tick(T0 + 190 * MIN)
    closed = eng.case(CENTER, case.id)
    assert closed.state == CaseState.CLOSED
    assert [(e.action, e.actor) for e in eng.store.audit_trail(case.id)][-2:] == [
        ("check", "system:recovery"),
        ("close", "system:recovery"),
    ]


def test_a_person_may_veto_the_automatic_check() -> None:
    """Within the veto window the shift lead sends the auto-checked case back (返工)."""
    eng = engine()
    eng.handle("gw-1", [alert("well_level_high", F, T0, device="lvl-1")])
    (case,) = eng.cases(CENTER)
    eng.act(case.id, Action(ActionKind.SIGN), WATER_HANDLER, T0 + 5 * MIN)
    eng.act(case.id, Action(ActionKind.REPORT_HANDLED), WATER_HANDLER, T0 + 10 * MIN)
    eng.handle("gw-1", [alert("well_level_high", R, T0 + 20 * MIN, device="lvl-1")])
    eng.tick(T0 + 50 * MIN)
    vetoed = eng.act(case.id, Action(ActionKind.REWORK, reason="still flooded"), CENTER, T0 + HOUR)
    assert (vetoed.state, vetoed.reworks, vetoed.veto_until_ms) == ("dispatched", 1, None)
    eng.tick(T0 + 10 * HOUR)
    assert eng.case(CENTER, case.id).state != CaseState.CLOSED


def test_a_refiring_breaks_a_pending_automatic_check() -> None:
    """If the level rises again before `stable_for`, no automatic check happens."""
    eng = engine()
    eng.handle("gw-1", [alert("well_level_high", F, T0, device="lvl-1")])
    (case,) = eng.cases(CENTER)
    eng.act(case.id, Action(ActionKind.SIGN), WATER_HANDLER, T0 + 5 * MIN)
    eng.act(case.id, Action(ActionKind.REPORT_HANDLED), WATER_HANDLER, T0 + 10 * MIN)
    eng.handle("gw-1", [alert("well_level_high", R, T0 + 20 * MIN, device="lvl-1")])
    eng.handle("gw-1", [alert("well_level_high", F, T0 + 30 * MIN, device="lvl-1")])
    eng.tick(T0 + 2 * HOUR)
    again = eng.case(CENTER, case.id)
    assert (again.state, again.auto_check_ms, again.recovered_ms) == ("handled", None, None)


def test_human_check_required_recovery_is_only_evidence() -> None:
    """A resolved gas alert is recorded on the case; nothing closes it without a person."""
    eng = engine()
    eng.handle("gw-1", [alert("combustible_gas", F, T0)])
    (case,) = eng.cases(CENTER)
    eng.act(case.id, Action(ActionKind.SIGN), GAS_HANDLER, T0 + MIN)
    eng.act(case.id, Action(ActionKind.REPORT_HANDLED), GAS_HANDLER, T0 + 10 * MIN)
    eng.handle("gw-1", [alert("combustible_gas", R, T0 + 20 * MIN)])
    eng.tick(T0 + 30 * HOUR)
    after = eng.case(CENTER, case.id)
    assert (after.state, after.recovered_ms) == ("handled", T0 + 20 * MIN)
    assert [a.disposition for a in eng.store.alerts_of(case.id)] == ["case", "recovery"]


def test_a_declared_emergency_absorbs_matching_alerts() -> None:
    """During a declared flood emergency, drainage alerts of the office join the emergency case."""
    eng = engine()
    office = eng.ctx.district.ancestors(GRID)[1].code
    emergency = eng.declare_emergency(
        LEADER,
        "暴雨内涝",
        Matchers(category="drainage_overflow", grid=office),
        "drainage_overflow",
        GRID,
        T0 + 12 * HOUR,
        T0,
    )
    eng.handle("gw-1", [alert("well_level_high", F, T0 + MIN, device=f"lvl-{i}") for i in range(5)])
    eng.handle("gw-1", [alert("combustible_gas", F, T0 + MIN)])
    assert eng.count(CENTER) == 2
    absorbed = eng.case(CENTER, emergency.id)
    assert absorbed.alert_count == 5
    assert absorbed.priority == 3


def test_uncategorized_and_pending_alerts_are_kept_without_a_case() -> None:
    """An alert of a rule with no category, and a pending one, are kept and counted; no case."""
    eng = engine()
    eng.handle("gw-1", [alert("mystery_rule", F, T0), alert("combustible_gas", AlertState.PENDING, T0)])
    assert eng.count(CENTER) == 0
    assert sorted(a.disposition for a in eng.store.alerts_between(T0, T0 + 1)) == ["pending", "uncategorized"]


def test_an_alert_without_a_grid_is_located_or_left_to_the_district() -> None:
    """An alert with coordinates only is placed by the grid index; one with no place is visible district-wide only."""
    from gateway.alerts import AlertEvent, Location

    eng = engine()
    point = eng.ctx.district.territory(GRID2).polygon.representative_point()  # type: ignore[attr-defined]
    located = AlertEvent("gw-1", "gas-5", "combustible_gas", F, 1, T0, location=Location(lat=point.y, lon=point.x))
    nowhere = AlertEvent("gw-1", "gas-6", "combustible_gas", F, 1, T0)
    eng.handle("gw-1", [located, nowhere])
    by_device = {c.device: c for c in eng.cases(CENTER)}
    assert by_device["gas-5"].grid == GRID2
    assert by_device["gas-5"].state == CaseState.DISPATCHED
    assert by_device["gas-6"].grid is None
    assert by_device["gas-6"].state == CaseState.REPORTED
    assert eng.count(WORKER) == 0
