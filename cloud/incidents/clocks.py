"""Case clocks: a case, a policy, a calendar and `now` in; deadlines, traffic light and timers out.

Following the 立案结案标准: each step's limit runs from the end of the step before it (the moment the
case entered its current state), and the overall limit runs from 立案 (registration) to 结案 (closure).
Both are in the policy's clock mode (work time on the calendar, or natural time). 挂账 freezes them:
on resume every deadline still ahead when the hold began moves by the hold's length in that mode.
延期 moves the overall and current step deadlines by the granted time. The light is yellow from
`yellow_at` (80 %) and red from `red_at` (100 %) of the allowed time, of the current step or of the
whole case, whichever is worse.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from cloud.incidents.model import Case, CaseState, evolve
from cloud.incidents.ports import Calendar, Policy

# The clock step each state runs against (ON_HOLD and the final states run none).
STEP_OF_STATE = {
    CaseState.REPORTED: "accept",
    CaseState.VERIFYING: "verify",
    CaseState.ACCEPTED: "register",
    CaseState.REGISTERED: "dispatch",
    CaseState.DISPATCHED: "sign",
    CaseState.IN_PROGRESS: "handle",
    CaseState.HANDLED: "check",
    CaseState.CHECKING: "close",
}
_DEADLINES = ("step_due_ms", "step_yellow_ms", "due_ms", "yellow_ms", "handle_due_ms")


class Light(StrEnum):
    """Traffic light of an open case; NONE for closed, cancelled or clock-less cases."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    NONE = "none"


class Clock:
    """Deadline arithmetic on cases with one calendar."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar

    def _at(self, start: int, allowed: int, fraction: float, mode: str) -> int:
        return self.calendar.due(start, int(allowed * fraction), mode)

    def start(self, case: Case, policy: Policy, now: int) -> Case:
        """Set the clock mode of a new case (the overall clock starts at registration)."""
        return evolve(case, clock_mode=policy.clock_mode)

    def enter(self, case: Case, policy: Policy, now: int) -> Case:
        """Start the step clock of the case's (new) state; registration also starts the overall clock."""
        step = STEP_OF_STATE.get(CaseState(case.state))
        allowed = policy.steps.get(step) if step is not None else None
        changes = self._lasting(case, policy, now, step, allowed)
        changes["step"] = step
        changes["step_started_ms"] = now
        if step is None or allowed is None:
            changes["step_due_ms"] = changes["step_yellow_ms"] = None
        else:
            changes["step_due_ms"] = self._at(now, allowed, policy.red_at, case.clock_mode)
            changes["step_yellow_ms"] = self._at(now, allowed, policy.yellow_at, case.clock_mode)
        return evolve(case, **changes)

    def pass_through(self, case: Case, policy: Policy, now: int) -> Case:
        """Return what entering the case's state at `now` leaves behind when the case moves on at that instant.

        That is `enter` without the step clock (the next state's replaces it): the overall clock started at
        registration, and the handling deadline.
        """
        step = STEP_OF_STATE.get(CaseState(case.state))
        allowed = policy.steps.get(step) if step is not None else None
        changes = self._lasting(case, policy, now, step, allowed)
        return evolve(case, **changes) if changes else case

    def _lasting(self, case: Case, policy: Policy, now: int, step: str | None, allowed: int | None) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        mode = case.clock_mode
        if case.state == CaseState.REGISTERED and case.due_ms is None:
            changes["due_started_ms"] = now
            changes["due_ms"] = self._at(now, policy.overall_ms, policy.red_at, mode)
            changes["yellow_ms"] = self._at(now, policy.overall_ms, policy.yellow_at, mode)
        if step == "handle" and allowed is not None:
            changes["handle_due_ms"] = self._at(now, allowed, policy.red_at, mode)
        return changes

    def resume(self, case: Case, now: int) -> Case:
        """Move every deadline still ahead at the hold's start by the hold's length; count the pause."""
        start = case.hold_started_ms
        if start is None:
            return case
        changes: dict[str, Any] = {}
        for name in _DEADLINES:
            deadline = getattr(case, name)
            if deadline is not None and deadline > start:
                left = self.calendar.elapsed(start, deadline, case.clock_mode)
                changes[name] = self.calendar.due(now, left, case.clock_mode)
        return evolve(case, paused_ms=case.paused_ms + max(0, now - start), hold_started_ms=None, **changes)

    def extend(self, case: Case, extra_ms: int, policy: Policy) -> Case:
        """Grant `extra_ms` more time: the overall, handling and current step deadlines move."""
        mode = case.clock_mode

        def later(ms: int | None, by: int) -> int | None:
            return None if ms is None else self.calendar.due(ms, by, mode)

        yellow_extra = int(extra_ms * policy.yellow_at / policy.red_at)
        return evolve(
            case,
            due_ms=later(case.due_ms, extra_ms),
            yellow_ms=later(case.yellow_ms, yellow_extra),
            handle_due_ms=later(case.handle_due_ms, extra_ms),
            step_due_ms=later(case.step_due_ms, extra_ms),
            step_yellow_ms=later(case.step_yellow_ms, yellow_extra),
        )

    @staticmethod
    def light(case: Case, now: int) -> Light:
        """Return the case's traffic light at `now` (frozen at the hold's start while on hold)."""
        if not case.open:
            return Light.NONE
        at = case.hold_started_ms if case.hold_started_ms is not None else now
        reds = [case.step_due_ms, case.due_ms]
        yellows = [case.step_yellow_ms, case.yellow_ms]
        if any(t is not None and at >= t for t in reds):
            return Light.RED
        if any(t is not None and at >= t for t in yellows):
            return Light.YELLOW
        if all(t is None for t in reds):
            return Light.NONE
        return Light.GREEN


def _triggers(case: Case) -> dict[str, int]:
    """Return the escalation triggers of a case and when they happen."""
    out: dict[str, int] = {}
    if case.step_due_ms is not None:
        out["sign_overdue" if case.state == CaseState.DISPATCHED else "step_overdue"] = case.step_due_ms
    if case.yellow_ms is not None:
        out["yellow"] = case.yellow_ms
    if case.due_ms is not None:
        out["red"] = case.due_ms
    return out


def timers(case: Case, policy: Policy) -> list[tuple[str, int]]:
    """Return the scheduler timers (key, at_ms) of a case; none while on hold or once final.

    Escalation timers are keyed `esc<i>:<trigger>` after the policy's escalation step they serve.
    """
    if not case.open or case.state == CaseState.ON_HOLD:
        return []
    triggers = _triggers(case)
    out: list[tuple[str, int]] = []
    for i, step in enumerate(policy.escalation):
        at = triggers.get(step.trigger)
        if at is None or (step.trigger == "step_overdue" and step.step not in (None, case.step)):
            continue
        out.append((f"esc{i}:{step.trigger}", at + step.after_ms))
    if case.auto_check_ms is not None and case.state == CaseState.HANDLED:
        out.append(("auto_check", case.auto_check_ms))
    if case.veto_until_ms is not None and case.state == CaseState.CHECKING:
        out.append(("auto_close", case.veto_until_ms))
    return out


def fired_key(kind: str, at: int) -> str:
    """Return how a fired timer is remembered on the case."""
    return f"{kind}@{at}"


def with_timer(case: Case, policy: Policy) -> Case:
    """Return the case with `timer_ms` (the earliest timer not fired yet) recomputed."""
    pending = [at for kind, at in timers(case, policy) if fired_key(kind, at) not in case.fired]
    return evolve(case, timer_ms=min(pending) if pending else None)
