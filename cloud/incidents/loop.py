"""The case loop as a pure function: a case, an action, an actor and `now` in; the next case and its audit out.

`apply_action` refuses (ActionRefused, with a stable `reason`) an action that is illegal in the case's
state (`state`), not allowed to the actor's role (`role`), on a case outside the actor's scope (`scope`),
by the unit that handled the case checking or closing it (`separation`), or malformed (`invalid`).
It never reads the clock or the database; deadlines come from the policy through `Clock`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cloud.incidents.clocks import Clock, with_timer
from cloud.incidents.model import (
    Action,
    ActionKind,
    AuditEntry,
    CancelReason,
    Case,
    CaseKind,
    CaseState,
    Outcome,
    Urgency,
    evolve,
)
from cloud.incidents.ports import District, Policies, Policy
from cloud.incidents.roles import Actor, Role, visible

S = CaseState
R = Role
MAX_PRIORITY: Final = 3


class ActionRefused(Exception):
    """An action may not be applied; `reason` is one of state, role, scope, separation, invalid."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Context:
    """What a transition needs besides the case: the territory tree, the standards and the clock."""

    district: District
    policies: Policies
    clock: Clock

    def policy(self, case: Case) -> Policy:
        """Return the case's policy."""
        return self.policies.policy(case.category, Urgency(case.urgency))


# Who may do what on a governance case; "assignee" means the unit the case is dispatched to.
_GOVERNANCE: Final[dict[ActionKind, frozenset[str]]] = {
    ActionKind.ACCEPT: frozenset({R.ACCEPTOR, R.SHIFT_LEAD}),
    ActionKind.VERIFY: frozenset({R.ACCEPTOR, R.SHIFT_LEAD, R.GRID_WORKER, R.AREA_LEAD}),
    ActionKind.REGISTER: frozenset({R.SHIFT_LEAD}),
    ActionKind.DISPATCH: frozenset({R.DISPATCHER, R.SHIFT_LEAD}),
    ActionKind.SIGN: frozenset({"assignee"}),
    ActionKind.RETURN: frozenset({"assignee"}),
    ActionKind.EXTEND: frozenset({R.DEPT_LEAD, R.AREA_LEAD, R.SHIFT_LEAD}),
    ActionKind.HOLD: frozenset({R.SHIFT_LEAD}),
    ActionKind.RESUME: frozenset({R.SHIFT_LEAD}),
    ActionKind.REPORT_HANDLED: frozenset({"assignee"}),
    ActionKind.SELF_HANDLE: frozenset({R.GRID_WORKER}),
    ActionKind.CHECK: frozenset({R.GRID_WORKER, R.AREA_LEAD, R.OFFICE_LEAD, R.ACCEPTOR, R.SHIFT_LEAD}),
    ActionKind.CLOSE: frozenset({R.ACCEPTOR, R.SHIFT_LEAD}),
    ActionKind.REWORK: frozenset({R.GRID_WORKER, R.AREA_LEAD, R.ACCEPTOR, R.SHIFT_LEAD}),
    ActionKind.CANCEL: frozenset({R.ACCEPTOR, R.SHIFT_LEAD}),
    ActionKind.SUPERVISE: frozenset({R.LEADER, R.SHIFT_LEAD}),
}
# The maintenance queue works its own device-health cases end to end.
_MAINTENANCE: Final = frozenset(
    {
        ActionKind.DISPATCH,
        ActionKind.SIGN,
        ActionKind.RETURN,
        ActionKind.EXTEND,
        ActionKind.HOLD,
        ActionKind.RESUME,
        ActionKind.REPORT_HANDLED,
        ActionKind.CLOSE,
        ActionKind.CANCEL,
    }
)
_NEEDS_REASON: Final = frozenset(
    {ActionKind.RETURN, ActionKind.EXTEND, ActionKind.HOLD, ActionKind.CANCEL, ActionKind.REWORK}
)
_ASSIGNEE_ROLES: Final = {
    "department": frozenset({R.DEPT_LEAD, R.DEPT_HANDLER}),
    "grid_team": frozenset({R.GRID_WORKER, R.AREA_LEAD}),
    "maintenance": frozenset({R.MAINTENANCE}),
}


def _refuse(reason: str, message: str) -> ActionRefused:
    return ActionRefused(reason, message)


def _expect(case: Case, action: Action, states: frozenset[CaseState] | set[CaseState]) -> None:
    if case.state not in states:  # a StrEnum member equals and hashes as its value
        raise _refuse("state", f"{action.kind.value} is not possible in state {case.state}")


def _may(case: Case, action: Action, actor: Actor, ctx: Context) -> None:
    """Raise unless the actor's role and scope allow the action on this case."""
    if actor.role == R.SYSTEM:
        return
    if actor.role == R.ADMIN:
        raise _refuse("role", "admin configures and takes no case action")
    if not visible(actor, case, ctx.district):
        raise _refuse("scope", f"case {case.id} is outside {actor.username}'s scope")
    if case.kind == CaseKind.MAINTENANCE:
        if actor.role != R.MAINTENANCE or action.kind not in _MAINTENANCE:
            raise _refuse("role", f"{actor.role} may not {action.kind.value} a maintenance case")
        return
    allowed = _GOVERNANCE[action.kind]
    if "assignee" in allowed:
        allowed = _ASSIGNEE_ROLES.get(case.assignee_kind or "", frozenset())
    if actor.role not in allowed:
        raise _refuse("role", f"{actor.role} may not {action.kind.value}")
    # Extension by a department is approved by its lead, by a grid team's by the area lead.
    if action.kind == ActionKind.EXTEND and actor.role in (R.DEPT_LEAD, R.AREA_LEAD):
        expected = "department" if actor.role == R.DEPT_LEAD else "grid_team"
        if case.assignee_kind != expected:
            raise _refuse("scope", f"{actor.role} may extend only cases assigned to its unit")


def _separate(case: Case, actor: Actor) -> None:
    """The unit (or person) that handled a case may not check, rework or close it."""
    if case.kind == CaseKind.MAINTENANCE or actor.role == R.SYSTEM:
        return
    if actor.username == case.handled_by or (case.handled_unit is not None and actor.scope == case.handled_unit):
        raise _refuse("separation", f"{case.handled_unit} handled case {case.id} and may not check or close it")


def _dispatch_fields(case: Case, action: Action) -> dict[str, Any]:
    if action.assignee is None:
        raise _refuse("invalid", "dispatch needs an assignee")
    if action.assignee.kind not in _ASSIGNEE_ROLES:
        raise _refuse("invalid", f"unknown assignee kind {action.assignee.kind!r}")
    assignee = action.assignee
    return {
        "assignee_kind": assignee.kind,
        "assignee_code": assignee.code,
        "department": assignee.code if assignee.kind == "department" else None,
        "dispatches": case.dispatches + 1,
    }


Handler = Callable[[Case, Action, Actor, int, Context], tuple[CaseState, dict[str, Any]]]


def _accept(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.REPORTED})
    return S.ACCEPTED, {"accepted_ms": now}


def _verify(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    if action.outcome is None:  # the acceptor asks a grid worker to verify on site
        _expect(case, action, {S.REPORTED})
        if actor.role not in (R.ACCEPTOR, R.SHIFT_LEAD, R.SYSTEM):
            raise _refuse("role", f"{actor.role} may not request verification")
        return S.VERIFYING, {}
    _expect(case, action, {S.VERIFYING})
    if actor.role not in (R.GRID_WORKER, R.AREA_LEAD, R.SYSTEM):
        raise _refuse("role", f"{actor.role} may not answer a verification")
    if action.outcome == Outcome.PASS:
        return S.ACCEPTED, {"accepted_ms": now}
    if not action.reason:
        raise _refuse("invalid", "a failed verification needs a reason")
    return S.CANCELLED, {"cancel_reason": CancelReason.FALSE_ALARM.value, "closed_ms": now}


def _register(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.ACCEPTED})
    return S.REGISTERED, {"registered_ms": now}


def _dispatch(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.REGISTERED} if case.kind == CaseKind.GOVERNANCE else {S.REPORTED, S.REGISTERED})
    fields = _dispatch_fields(case, action)
    fields["dispatched_ms"] = case.dispatched_ms or now
    return S.DISPATCHED, fields


def _sign(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.DISPATCHED})
    return S.IN_PROGRESS, {"signed_ms": case.signed_ms or now}


def _return(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.DISPATCHED, S.IN_PROGRESS})
    return S.REGISTERED, {
        "assignee_kind": None,
        "assignee_code": None,
        "department": None,
        "returns": case.returns + 1,
    }


def _extend(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.DISPATCHED, S.IN_PROGRESS})
    if action.extend_ms <= 0:
        raise _refuse("invalid", "an extension needs a positive extend_ms")
    return CaseState(case.state), {"extensions": case.extensions + 1}


def _hold(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.REGISTERED, S.DISPATCHED, S.IN_PROGRESS})
    return S.ON_HOLD, {"held_from": case.state, "hold_started_ms": now, "holds": case.holds + 1}


def _resume(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.ON_HOLD})
    return CaseState(case.held_from or S.REGISTERED), {"held_from": None}


def _handled(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.IN_PROGRESS})
    return S.HANDLED, {"handled_ms": now, "handled_unit": case.assignee_code, "handled_by": actor.username}


def _self_handle(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.REPORTED, S.ACCEPTED, S.REGISTERED})
    if not ctx.policy(case).self_handling:
        raise _refuse("invalid", f"category {case.category} may not be handled by the grid itself")
    return S.HANDLED, {
        "assignee_kind": "grid_team",
        "assignee_code": case.grid,
        "department": None,
        "handled_ms": now,
        "handled_unit": actor.scope,
        "handled_by": actor.username,
        "registered_ms": case.registered_ms or now,
    }


def _rework_fields(case: Case) -> dict[str, Any]:
    return {"reworks": case.reworks + 1, "handled_ms": None, "checked_ms": None, "veto_until_ms": None}


def _check(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.HANDLED})
    _separate(case, actor)
    if action.outcome is None:
        raise _refuse("invalid", "a check needs an outcome (pass or fail)")
    if action.outcome == Outcome.FAIL:
        if not action.reason:
            raise _refuse("invalid", "a failed check needs a reason")
        return S.DISPATCHED, _rework_fields(case)
    fields: dict[str, Any] = {"checked_ms": now}
    if actor.role == R.SYSTEM:  # an automatic check waits out the veto window before closing
        fields["veto_until_ms"] = now + ctx.policy(case).veto_ms
    return S.CHECKING, fields


def _close(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.CHECKING} if case.kind == CaseKind.GOVERNANCE else {S.HANDLED, S.CHECKING, S.IN_PROGRESS})
    _separate(case, actor)
    return S.CLOSED, {"closed_ms": now}


def _rework(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.HANDLED, S.CHECKING})
    _separate(case, actor)
    return S.DISPATCHED, _rework_fields(case)


def _cancel(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    _expect(case, action, {S.REPORTED, S.VERIFYING, S.ACCEPTED, S.REGISTERED, S.DISPATCHED, S.IN_PROGRESS})
    if action.cancel_reason is None:
        raise _refuse("invalid", "a cancellation needs a cancel_reason")
    return S.CANCELLED, {"cancel_reason": action.cancel_reason.value, "closed_ms": now}


def _supervise(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    if not case.open:
        raise _refuse("state", "a closed case cannot be supervised")
    return CaseState(case.state), {"supervised": case.supervised + 1, "priority": min(MAX_PRIORITY, case.priority + 1)}


_HANDLERS: Final[dict[ActionKind, Handler]] = {
    ActionKind.ACCEPT: _accept,
    ActionKind.VERIFY: _verify,
    ActionKind.REGISTER: _register,
    ActionKind.DISPATCH: _dispatch,
    ActionKind.SIGN: _sign,
    ActionKind.RETURN: _return,
    ActionKind.EXTEND: _extend,
    ActionKind.HOLD: _hold,
    ActionKind.RESUME: _resume,
    ActionKind.REPORT_HANDLED: _handled,
    ActionKind.SELF_HANDLE: _self_handle,
    ActionKind.CHECK: _check,
    ActionKind.CLOSE: _close,
    ActionKind.REWORK: _rework,
    ActionKind.CANCEL: _cancel,
    ActionKind.SUPERVISE: _supervise,
}


def _checked(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[CaseState, dict[str, Any]]:
    """Refuse an illegal action, else return the state and fields it leads to (no clock work)."""
    if not case.open:
        raise _refuse("state", f"case {case.id} is {case.state}")
    _may(case, action, actor, ctx)
    if action.kind in _NEEDS_REASON and not action.reason.strip():
        raise _refuse("invalid", f"{action.kind.value} needs a reason")
    if (
        action.kind == ActionKind.CANCEL
        and case.state in (S.DISPATCHED, S.IN_PROGRESS)
        and actor.role
        not in (
            R.SHIFT_LEAD,
            R.SYSTEM,
            R.MAINTENANCE,
        )
    ):
        raise _refuse("role", "only the shift lead cancels a dispatched case")
    return _HANDLERS[action.kind](case, action, actor, now, ctx)


def _entry(case: Case, new: Case, action: Action, actor: Actor, now: int) -> AuditEntry:
    detail: dict[str, Any] = {}
    if action.assignee is not None:
        detail["assignee"] = {"kind": action.assignee.kind, "code": action.assignee.code}
    if action.outcome is not None:
        detail["outcome"] = action.outcome.value
    if action.cancel_reason is not None:
        detail["cancel_reason"] = action.cancel_reason.value
    if action.extend_ms:
        detail["extend_ms"] = action.extend_ms
        detail["due_ms"] = new.due_ms
    return AuditEntry(
        case_id=case.id,
        at_ms=now,
        actor=actor.username,
        role=actor.role,
        action=action.kind.value,
        from_state=case.state,
        to_state=new.state,
        reason=action.reason,
        evidence=action.evidence,
        detail=detail,
    )


def apply_action(case: Case, action: Action, actor: Actor, now: int, ctx: Context) -> tuple[Case, AuditEntry]:
    """Return the case after `action` by `actor` at `now`, and the audit entry; raise ActionRefused."""
    to_state, fields = _checked(case, action, actor, now, ctx)
    policy = ctx.policy(case)
    new = evolve(case, state=to_state.value, updated_ms=now, **fields)
    if action.kind == ActionKind.EXTEND:
        new = ctx.clock.extend(new, action.extend_ms, policy)
    if action.kind == ActionKind.RESUME:
        new = ctx.clock.resume(new, now)
    elif to_state != case.state and to_state != S.ON_HOLD:
        new = ctx.clock.enter(new, policy, now)
    new = with_timer(new, policy)
    return new, _entry(case, new, action, actor, now)


# Actions whose clock effect reads the deadlines so far, or keeps the state: applied one by one.
_STEPWISE: Final = frozenset({ActionKind.EXTEND, ActionKind.RESUME, ActionKind.HOLD})


def apply_actions(
    case: Case, steps: Sequence[tuple[Action, Actor]], now: int, ctx: Context, *, entered: bool = False
) -> tuple[Case, list[AuditEntry], ActionRefused | None]:
    """Apply actions at one instant in one pass; stop at the first refused one and return it.

    The result equals `apply_action` applied in turn (a test holds it so): the state clock of a state left
    at the same instant is never read, so only what entering it leaves behind (the overall clock at
    registration, the handling deadline) is computed, and the step clock and timer once, at the end.
    `entered`: the case has just entered its state at `now` and its clock has not started (a new case).
    """
    policy = ctx.policy(case)
    clock = ctx.clock
    entries: list[AuditEntry] = []
    pending = entered  # the current state's clock still has to start at `now`
    refused: ActionRefused | None = None
    for action, actor in steps:
        if action.kind in _STEPWISE:
            if pending:
                case, pending = clock.enter(case, policy, now), False
            try:
                case, entry = apply_action(case, action, actor, now, ctx)
            except ActionRefused as exc:
                refused = exc
                break
            entries.append(entry)
            continue
        try:
            to_state, fields = _checked(case, action, actor, now, ctx)
        except ActionRefused as exc:
            refused = exc
            break
        if to_state != case.state:
            if pending:
                case = clock.pass_through(case, policy, now)
            pending = True
        new = evolve(case, state=to_state.value, updated_ms=now, **fields)
        entries.append(_entry(case, new, action, actor, now))
        case = new
    if pending:
        case = clock.enter(case, policy, now)
    if entered or entries:
        case = with_timer(case, policy)
    return case, entries, refused
