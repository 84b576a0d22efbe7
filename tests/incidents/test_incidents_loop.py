"""The case loop: scripted lives of a case through every path, with roles, scope and separation of duties."""

from __future__ import annotations

import pytest

from cloud.incidents.clocks import Light
from cloud.incidents.engine import CaseNotFound, Incidents
from cloud.incidents.loop import ActionRefused, apply_action
from cloud.incidents.model import Action, ActionKind, Assignee, CancelReason, Case, CaseState, Outcome, Source, Urgency
from gateway.alerts import AlertState
from tests.incidents.incidents_rig import (
    ACCEPTOR,
    ADMIN,
    AREA_LEAD,
    CENTER,
    CG_HANDLER,
    DISPATCHER,
    FAR_WORKER,
    GAS_HANDLER,
    GAS_LEAD,
    GRID,
    HOUR,
    LEADER,
    MIN,
    T0,
    WATER_HANDLER,
    WORKER,
    WORKER2,
    alert,
    engine,
)

A = ActionKind


def gas_case(eng: Incidents) -> Case:
    """Fire one gas alert and return its (auto-dispatched) case."""
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])
    (case,) = eng.cases(CENTER)
    return case


def test_sensor_case_is_auto_dispatched_through_the_routing_table_and_audited_as_system() -> None:
    """A firing gas alert becomes one case accepted, registered and dispatched to the gas company by system actors."""
    eng = engine()
    case = gas_case(eng)
    assert (case.state, case.assignee_kind, case.department) == ("dispatched", "department", "RQGS")
    assert case.source == Source.SENSOR
    assert case.area is not None
    assert case.office is not None
    trail = eng.store.audit_trail(case.id)
    assert [(e.action, e.actor, e.to_state) for e in trail] == [
        ("report", "system:combustible_gas", "reported"),
        ("accept", "system:intake", "accepted"),
        ("register", "system:intake", "registered"),
        ("dispatch", "system:routing", "dispatched"),
    ]
    assert trail[-1].detail["assignee"] == {"kind": "department", "code": "RQGS"}
    # Natural-clock gas_leak, normal urgency: overall 24 h from registration, sign within 30 min.
    assert case.due_ms == T0 + 24 * HOUR
    assert case.step == "sign"
    assert case.step_due_ms == T0 + 30 * MIN


def test_full_life_sign_handle_check_close_with_separation_of_duties() -> None:
    """Sign → handled → check → close; the handling department can neither check nor close its own case."""
    eng = engine()
    case = gas_case(eng)
    eng.act(case.id, Action(A.SIGN), GAS_HANDLER, T0 + 5 * MIN)
    eng.act(case.id, Action(A.REPORT_HANDLED, evidence=("photo:1",)), GAS_HANDLER, T0 + HOUR)
    with pytest.raises(ActionRefused) as refused:
        eng.act(case.id, Action(A.CLOSE), GAS_LEAD, T0 + HOUR)
    assert refused.value.reason == "role"
    eng.act(case.id, Action(A.CHECK, outcome=Outcome.PASS), WORKER, T0 + 2 * HOUR)
    closed = eng.act(case.id, Action(A.CLOSE, reason="verified on site"), CENTER, T0 + 2 * HOUR + MIN)
    assert closed.state == CaseState.CLOSED
    assert closed.handled_unit == "RQGS"
    assert closed.handled_by == "zhao"
    assert [e.action for e in eng.store.audit_trail(case.id)][-4:] == ["sign", "report_handled", "check", "close"]
    assert eng.store.audit_trail(case.id)[-3].evidence == ("photo:1",)


def test_self_handled_case_cannot_be_checked_by_the_same_grid_team() -> None:
    """A grid worker self-handles a manhole cover; a colleague of the same grid may not check it, the area lead may."""
    eng = engine()
    case = eng.report(WORKER, "manhole_cover", Urgency.NORMAL, T0, title="cover askew", grid=GRID)
    handled = eng.act(case.id, Action(A.SELF_HANDLE, reason="reseated"), WORKER, T0 + 10 * MIN)
    assert (handled.state, handled.handled_unit) == ("handled", GRID)
    for actor in (WORKER, WORKER2):
        with pytest.raises(ActionRefused) as refused:
            eng.act(case.id, Action(A.CHECK, outcome=Outcome.PASS), actor, T0 + 20 * MIN)
        assert refused.value.reason == "separation"
    eng.act(case.id, Action(A.CHECK, outcome=Outcome.PASS), AREA_LEAD, T0 + 30 * MIN)
    assert eng.act(case.id, Action(A.CLOSE), CENTER, T0 + 40 * MIN).state == CaseState.CLOSED


def test_self_handling_is_refused_for_categories_not_whitelisted() -> None:
    """Gas leaks are not on the self-handling whitelist."""
    eng = engine()
    case = eng.report(WORKER, "gas_leak", Urgency.URGENT, T0, title="smell of gas", grid=GRID)
    with pytest.raises(ActionRefused) as refused:
        eng.act(case.id, Action(A.SELF_HANDLE), WORKER, T0 + MIN)
    assert refused.value.reason == "invalid"


def test_manual_path_accept_register_dispatch_then_return_and_redispatch() -> None:
    """A reported case goes 受理 → 立案 → 派遣 to the wrong department, which returns it (回退) for re-dispatch."""
    eng = engine()
    case = eng.report(WORKER, "drainage_overflow", Urgency.NORMAL, T0, title="well overflowing", grid=GRID)
    eng.act(case.id, Action(A.ACCEPT), ACCEPTOR, T0 + MIN)
    eng.act(case.id, Action(A.REGISTER), CENTER, T0 + 2 * MIN)
    wrong = Assignee("department", "CGJ")
    eng.act(case.id, Action(A.DISPATCH, assignee=wrong), DISPATCHER, T0 + 3 * MIN)
    with pytest.raises(ActionRefused) as refused:
        eng.act(case.id, Action(A.RETURN), CG_HANDLER, T0 + 4 * MIN)  # a return needs a reason
    assert refused.value.reason == "invalid"
    back = eng.act(case.id, Action(A.RETURN, reason="drainage is SWJ's"), CG_HANDLER, T0 + 5 * MIN)
    assert (back.state, back.department, back.returns) == ("registered", None, 1)
    with pytest.raises(CaseNotFound):  # the returning department no longer sees it
        eng.case(CG_HANDLER, case.id)
    eng.act(case.id, Action(A.DISPATCH, assignee=Assignee("department", "SWJ")), DISPATCHER, T0 + 6 * MIN)
    signed = eng.act(case.id, Action(A.SIGN), WATER_HANDLER, T0 + 7 * MIN)
    assert (signed.state, signed.dispatches, signed.signed_ms) == ("in_progress", 2, T0 + 7 * MIN)


def test_extension_moves_the_deadlines_and_needs_the_department_lead() -> None:
    """延期 by a handler is refused; by the department lead it moves the overall and step deadlines."""
    eng = engine()
    case = gas_case(eng)
    eng.act(case.id, Action(A.SIGN), GAS_HANDLER, T0 + 5 * MIN)
    with pytest.raises(ActionRefused) as refused:
        eng.act(case.id, Action(A.EXTEND, reason="parts", extend_ms=HOUR), GAS_HANDLER, T0 + 10 * MIN)
    assert refused.value.reason == "role"
    before = eng.case(CENTER, case.id)
    after = eng.act(case.id, Action(A.EXTEND, reason="parts on order", extend_ms=2 * HOUR), GAS_LEAD, T0 + 10 * MIN)
    assert after.due_ms == before.due_ms + 2 * HOUR  # type: ignore[operator]
    assert after.step_due_ms == before.step_due_ms + 2 * HOUR  # type: ignore[operator]
    assert after.handle_due_ms == before.handle_due_ms + 2 * HOUR  # type: ignore[operator]
    assert (after.extensions, after.state) == (1, "in_progress")


def test_hold_pauses_the_clock_and_resume_moves_the_deadlines() -> None:
    """挂账 for 3 h freezes the light; on resume every deadline moved by 3 h and the pause is counted."""
    eng = engine()
    case = gas_case(eng)
    eng.act(case.id, Action(A.SIGN), GAS_HANDLER, T0 + 5 * MIN)
    held = eng.act(case.id, Action(A.HOLD, reason="awaiting road permit"), CENTER, T0 + HOUR)
    assert held.state == CaseState.ON_HOLD
    assert held.timer_ms is None
    assert eng.timeline(CENTER, case.id, T0 + 30 * HOUR).light == Light.GREEN  # frozen: not red after 30 h
    resumed = eng.act(case.id, Action(A.RESUME), CENTER, T0 + 4 * HOUR)
    assert resumed.state == CaseState.IN_PROGRESS
    assert resumed.paused_ms == 3 * HOUR
    assert resumed.due_ms == case.due_ms + 3 * HOUR  # type: ignore[operator]


def test_failed_check_sends_the_case_back_for_rework() -> None:
    """核查 fail → 返工: back to DISPATCHED for the same department, rework counted, handled time cleared."""
    eng = engine()
    case = gas_case(eng)
    eng.act(case.id, Action(A.SIGN), GAS_HANDLER, T0 + 5 * MIN)
    eng.act(case.id, Action(A.REPORT_HANDLED), GAS_HANDLER, T0 + HOUR)
    with pytest.raises(ActionRefused):
        eng.act(case.id, Action(A.CHECK, outcome=Outcome.FAIL), WORKER, T0 + 2 * HOUR)  # no reason
    back = eng.act(case.id, Action(A.CHECK, outcome=Outcome.FAIL, reason="still leaking"), WORKER, T0 + 2 * HOUR)
    assert (back.state, back.department, back.reworks, back.handled_ms) == ("dispatched", "RQGS", 1, None)
    eng.act(case.id, Action(A.SIGN), GAS_HANDLER, T0 + 3 * HOUR)
    eng.act(case.id, Action(A.REPORT_HANDLED), GAS_HANDLER, T0 + 4 * HOUR)
    eng.act(case.id, Action(A.CHECK, outcome=Outcome.PASS), WORKER, T0 + 5 * HOUR)
    vetoed = eng.act(case.id, Action(A.REWORK, reason="smell again"), CENTER, T0 + 5 * HOUR + MIN)
    assert (vetoed.state, vetoed.reworks) == ("dispatched", 2)


def test_cancel_needs_a_reason_and_a_dispatched_case_only_by_the_shift_lead() -> None:
    """作废 with a cancel reason; an acceptor may not cancel a dispatched case; a cancelled case takes no action."""
    eng = engine()
    case = gas_case(eng)
    with pytest.raises(ActionRefused) as refused:
        eng.act(case.id, Action(A.CANCEL, reason="dup", cancel_reason=CancelReason.DUPLICATE), ACCEPTOR, T0)
    assert refused.value.reason == "role"
    with pytest.raises(ActionRefused):
        eng.act(case.id, Action(A.CANCEL, reason="dup"), CENTER, T0)  # no cancel_reason
    done = eng.act(case.id, Action(A.CANCEL, reason="test gas", cancel_reason=CancelReason.FALSE_ALARM), CENTER, T0)
    assert (done.state, done.cancel_reason) == ("cancelled", "false_alarm")
    with pytest.raises(ActionRefused) as refused:
        eng.act(case.id, Action(A.SUPERVISE, reason="?"), LEADER, T0)
    assert refused.value.reason == "state"


def test_verification_request_and_false_report() -> None:
    """核实: the acceptor asks, the grid worker finds nothing, the case is cancelled as a false alarm."""
    eng = engine()
    case = eng.report(ACCEPTOR, "garbage", Urgency.NORMAL, T0, title="bin overflowing", grid=GRID, source=Source.PUBLIC)
    eng.act(case.id, Action(A.VERIFY), ACCEPTOR, T0 + MIN)
    with pytest.raises(CaseNotFound):  # another grid's worker does not see it, let alone verify it
        eng.act(case.id, Action(A.VERIFY, outcome=Outcome.PASS), FAR_WORKER, T0 + 2 * MIN)
    done = eng.act(case.id, Action(A.VERIFY, outcome=Outcome.FAIL, reason="bin is empty"), WORKER, T0 + 3 * MIN)
    assert (done.state, done.cancel_reason) == ("cancelled", "false_alarm")


def test_supervise_raises_priority_and_admin_takes_no_case_action() -> None:
    """督办 by a leader flags the case and raises its priority; admin is refused every case action."""
    eng = engine()
    case = gas_case(eng)
    flagged = eng.act(case.id, Action(A.SUPERVISE, reason="press coverage"), LEADER, T0 + MIN)
    assert (flagged.supervised, flagged.priority) == (1, 1)
    with pytest.raises(CaseNotFound):
        eng.case(ADMIN, case.id)
    with pytest.raises(CaseNotFound):  # the engine does not even admit the case exists
        eng.act(case.id, Action(A.SIGN), ADMIN, T0)
    with pytest.raises(ActionRefused) as refused:  # and the pure loop refuses the role
        apply_action(case, Action(A.SIGN), ADMIN, T0, eng.ctx)
    assert refused.value.reason == "role"


def test_actions_out_of_state_are_refused() -> None:
    """Signing an undispatched case or closing an unchecked one is a `state` refusal."""
    eng = engine()
    case = eng.report(WORKER, "gas_leak", Urgency.NORMAL, T0, title="smell", grid=GRID)
    with pytest.raises(ActionRefused) as refused:
        eng.act(case.id, Action(A.CLOSE), CENTER, T0)
    assert refused.value.reason == "state"
    with pytest.raises(ActionRefused) as refused:
        eng.act(case.id, Action(A.REGISTER), CENTER, T0)
    assert refused.value.reason == "state"
