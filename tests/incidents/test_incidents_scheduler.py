"""Clocks and escalation: the scheduler fires on the clock (not on events), once, paused by 挂账, in work time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cloud.incidents.clocks import Light
from cloud.incidents.model import Action, ActionKind
from cloud.incidents.store import Escalation
from cloud.worktime import default_calendar
from gateway.alerts import AlertState
from tests.incidents.incidents_rig import CENTER, GAS_HANDLER, GAS_LEAD, HOUR, MIN, T0, alert, engine

CST = timezone(timedelta(hours=8))


def cst(year: int, month: int, day: int, hour: int, minute: int) -> int:
    """Return UTC ms of a wall time in Asia/Shanghai."""
    return int(datetime(year, month, day, hour, minute, tzinfo=CST).timestamp() * 1000)


def test_not_signed_in_time_escalates_then_yellow_notifies_then_red_supervises() -> None:
    """Gas (natural, normal): sign overdue at 30 min, yellow at 80 % of 24 h, red at 24 h → 督办 by the scheduler."""
    eng = engine()
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])
    (case,) = eng.cases(CENTER)
    assert eng.tick(T0 + 29 * MIN) == []
    assert eng.tick(T0 + 30 * MIN) == [
        Escalation(case.id, "sign_overdue", T0 + 30 * MIN, T0 + 30 * MIN, "escalate", ("shift_lead", "dept_lead"))
    ]
    assert eng.tick(T0 + 30 * MIN) == []  # idempotent at the same time
    yellow_at = T0 + int(24 * HOUR * 0.8)
    assert eng.timeline(CENTER, case.id, yellow_at - 1).light == Light.RED  # the sign step is already overdue
    (yellow,) = eng.tick(yellow_at)
    assert (yellow.kind, yellow.action, yellow.notify) == ("yellow", "notify", ("dept_lead", "leader"))
    (red,) = eng.tick(T0 + 24 * HOUR + 1)
    assert (red.kind, red.action, red.at_ms) == ("red", "supervise", T0 + 24 * HOUR)
    flagged = eng.case(CENTER, case.id)
    assert (flagged.supervised, flagged.priority, flagged.timer_ms) == (1, 1, None)
    assert eng.store.audit_trail(case.id)[-1].actor == "system:scheduler"
    assert eng.tick(T0 + 48 * HOUR) == []
    assert [e.kind for e in eng.store.escalations(case.id)] == ["sign_overdue", "yellow", "red"]


def test_a_tick_catching_up_fires_every_due_step_once() -> None:
    """A scheduler that was down for two days fires sign-overdue, yellow and red in one tick, each once."""
    eng = engine()
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])
    fired = eng.tick(T0 + 48 * HOUR)
    assert [e.kind for e in fired] == ["sign_overdue", "yellow", "red"]
    assert eng.tick(T0 + 48 * HOUR) == []
    assert eng.tick(T0 + 49 * HOUR) == []


def test_signing_in_time_prevents_the_sign_escalation() -> None:
    """A case signed for within 30 min never escalates for signing."""
    eng = engine()
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])
    (case,) = eng.cases(CENTER)
    eng.act(case.id, Action(ActionKind.SIGN), GAS_HANDLER, T0 + 10 * MIN)
    assert eng.tick(T0 + HOUR) == []


def test_hold_pauses_escalation_and_resume_restarts_it_later() -> None:
    """A case on hold for 30 h does not go yellow or red; after resume, both come 30 h later than they would have."""
    eng = engine()
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])
    (case,) = eng.cases(CENTER)
    eng.act(case.id, Action(ActionKind.SIGN), GAS_HANDLER, T0 + 10 * MIN)
    eng.act(case.id, Action(ActionKind.HOLD, reason="waiting for the utility"), CENTER, T0 + HOUR)
    assert eng.tick(T0 + 30 * HOUR) == []
    eng.act(case.id, Action(ActionKind.RESUME), CENTER, T0 + 31 * HOUR)
    assert [e.kind for e in eng.tick(T0 + 31 * HOUR)] == []
    fired = eng.tick(T0 + 54 * HOUR)
    assert [(e.kind, e.at_ms) for e in fired] == [
        ("yellow", T0 + int(19.2 * HOUR) + 30 * HOUR),
        ("red", T0 + 54 * HOUR),
    ]


def test_extension_moves_red_later() -> None:
    """A 延期 of 12 h moves red 12 h later and yellow by 80 % of it (9.6 h)."""
    eng = engine()
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])
    (case,) = eng.cases(CENTER)
    eng.act(case.id, Action(ActionKind.SIGN), GAS_HANDLER, T0 + 10 * MIN)
    eng.act(case.id, Action(ActionKind.EXTEND, reason="excavation", extend_ms=12 * HOUR), GAS_LEAD, T0 + HOUR)
    assert eng.tick(T0 + 28 * HOUR) == []
    fired = eng.tick(T0 + 36 * HOUR)
    assert [(e.kind, e.at_ms) for e in fired] == [("yellow", T0 + int(28.8 * HOUR)), ("red", T0 + 36 * HOUR)]


def test_work_time_deadlines_skip_the_new_year_holiday_and_count_the_makeup_sunday() -> None:
    """Air quality (work clock, 37.5 h) registered Wed 31 Dec 16:00 is due Thu 8 Jan 16:00; yellow Wed 7 Jan 16:00."""
    eng = engine(calendar=default_calendar())
    start = cst(2025, 12, 31, 16, 0)
    eng.handle("gw-1", [alert("pm25_high", AlertState.FIRING, start, device="aq-1")])
    (case,) = eng.cases(CENTER)
    assert case.due_ms == cst(2026, 1, 8, 16, 0)
    assert case.yellow_ms == cst(2026, 1, 7, 16, 0)
    # Sign limit 2 h of work time: 1.5 h left on Wednesday, then 30 min on the make-up Sunday 4 Jan.
    assert case.step_due_ms == cst(2026, 1, 4, 9, 0)
    fired = eng.tick(cst(2026, 1, 3, 12, 0))  # holidays: nothing is late yet
    assert fired == []
    assert [e.kind for e in eng.tick(cst(2026, 1, 4, 9, 0))] == ["sign_overdue"]
