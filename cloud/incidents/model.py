"""The case vocabulary: states, actions, urgencies, the Case record, an action request and its audit entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any, Final


class CaseState(StrEnum):
    """Where a case stands in the GB/T 30428 loop."""

    REPORTED = "reported"  # 上报
    VERIFYING = "verifying"  # 核实中
    ACCEPTED = "accepted"  # 受理
    REGISTERED = "registered"  # 立案 (also where a returned case waits for re-dispatch)
    DISPATCHED = "dispatched"  # 派遣, not signed for yet
    IN_PROGRESS = "in_progress"  # 签收, being handled
    ON_HOLD = "on_hold"  # 挂账, clock paused
    HANDLED = "handled"  # 处置反馈 given
    CHECKING = "checking"  # 核查 passed, waiting for 结案 (or a veto)
    CLOSED = "closed"  # 结案
    CANCELLED = "cancelled"  # 作废


OPEN_STATES = frozenset(CaseState) - {CaseState.CLOSED, CaseState.CANCELLED}


class CaseKind(StrEnum):
    """A governance case for the grid and departments, or a device-health case for maintenance."""

    GOVERNANCE = "governance"
    MAINTENANCE = "maintenance"


class Source(StrEnum):
    """Who reported the case."""

    SENSOR = "sensor"
    PUBLIC = "public"  # Open311
    MANUAL = "manual"  # a grid worker or the command center


class Urgency(StrEnum):
    """一般 / 紧急 / 非常紧急."""

    NORMAL = "normal"
    URGENT = "urgent"
    CRITICAL = "critical"


class CancelReason(StrEnum):
    """Why a case was cancelled (作废)."""

    TRANSIENT = "transient"
    FALSE_ALARM = "false_alarm"
    DUPLICATE = "duplicate"
    OUT_OF_SCOPE = "out_of_scope"


class Recovery(StrEnum):
    """How a case opened by a rule may close (device_profiles RuleBase.recovery)."""

    HUMAN_CHECK_REQUIRED = "human_check_required"
    SENSOR_SUFFICIENT = "sensor_sufficient"
    DEVICE_HEALTH = "device_health"


class ActionKind(StrEnum):
    """What a person (or the system) does to a case."""

    ACCEPT = "accept"  # 受理
    VERIFY = "verify"  # 核实: request (no outcome) or answer (outcome pass/fail)
    REGISTER = "register"  # 立案
    DISPATCH = "dispatch"  # 派遣
    SIGN = "sign"  # 签收
    RETURN = "return"  # 回退
    EXTEND = "extend"  # 延期
    HOLD = "hold"  # 挂账
    RESUME = "resume"
    REPORT_HANDLED = "report_handled"  # 处置反馈
    SELF_HANDLE = "self_handle"  # 自行处置
    CHECK = "check"  # 核查: outcome pass/fail
    CLOSE = "close"  # 结案
    REWORK = "rework"  # 返工
    CANCEL = "cancel"  # 作废
    SUPERVISE = "supervise"  # 督办


class Outcome(StrEnum):
    """The answer of a verification or a check."""

    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Assignee:
    """Who works a dispatched case: a department (条), a grid team (块) or the maintenance queue."""

    kind: str  # "department" | "grid_team" | "maintenance"
    code: str


@dataclass(frozen=True, slots=True)
class Action:
    """One requested action with its reason and evidence (photo ids, alert keys, notes)."""

    kind: ActionKind
    reason: str = ""
    evidence: tuple[str, ...] = ()
    outcome: Outcome | None = None
    assignee: Assignee | None = None  # dispatch
    cancel_reason: CancelReason | None = None  # cancel
    extend_ms: int = 0  # extend: more allowed time, in the case's clock mode


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited transition: who, as what role, when, from which state to which, why, on what evidence."""

    case_id: int
    at_ms: int
    actor: str
    role: str
    action: str
    from_state: str
    to_state: str
    reason: str = ""
    evidence: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One case (案卷); every field is a column of the `cases` table. Derive changed copies with `evolve`."""

    id: int
    kind: str
    source: str
    state: str
    category: str
    urgency: str
    reported_ms: int
    updated_ms: int
    title: str = ""
    priority: int = 0
    clock_mode: str = "work"
    recovery: str = Recovery.HUMAN_CHECK_REQUIRED.value
    # Where: the grid and its ancestors (denormalized so scope filters are plain column tests).
    grid: str | None = None
    area: str | None = None
    office: str | None = None
    district: str | None = None
    lat: float | None = None
    lon: float | None = None
    part_id: str | None = None
    device: str | None = None
    gateway: str | None = None
    # Alert bookkeeping: the first alert's dedup key, the grouping key, and the case this one recurs.
    dedup_key: str | None = None
    group_key: str | None = None
    recurrence_of: int | None = None
    alert_count: int = 0
    last_alert_ms: int | None = None
    # Who works it.
    assignee_kind: str | None = None
    assignee_code: str | None = None
    department: str | None = None  # assignee_code when the assignee is a department (scope filter)
    handled_unit: str | None = None
    handled_by: str | None = None
    # Milestones.
    accepted_ms: int | None = None
    registered_ms: int | None = None
    dispatched_ms: int | None = None
    signed_ms: int | None = None
    handled_ms: int | None = None
    checked_ms: int | None = None
    closed_ms: int | None = None
    cancel_reason: str | None = None
    # Counters and flags.
    dispatches: int = 0
    returns: int = 0
    extensions: int = 0
    reworks: int = 0
    holds: int = 0
    supervised: int = 0
    # Hold: the state to resume, when it began, and the total paused (natural) time.
    held_from: str | None = None
    hold_started_ms: int | None = None
    paused_ms: int = 0
    # Clocks: the current step and its deadline; the overall deadline (立案 → 结案) and its yellow point;
    # the handling deadline as it stood when the case was signed for (按期处置).
    step: str | None = None
    step_started_ms: int | None = None
    step_due_ms: int | None = None
    step_yellow_ms: int | None = None
    due_started_ms: int | None = None
    due_ms: int | None = None
    yellow_ms: int | None = None
    handle_due_ms: int | None = None
    # Recovery: when every alert of the case resolved; sensor-sufficient auto check and veto window.
    recovered_ms: int | None = None
    auto_check_ms: int | None = None
    veto_until_ms: int | None = None
    # Scheduler: the next timer and the timers already fired ("kind@ms").
    timer_ms: int | None = None
    fired: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        """Whether the case is neither closed nor cancelled."""
        return self.state in OPEN_STATES


CASE_FIELDS = frozenset(f.name for f in fields(Case))
_REQUIRED = frozenset(f.name for f in fields(Case) if f.default is MISSING)
# Every field in declaration order (required ones as None, always overwritten): a merge keeps this order.
_DEFAULTS: dict[str, Any] = {f.name: None if f.default is MISSING else f.default for f in fields(Case)}


def case_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return every field of `Case(**values)` as a new dict (the rest at their defaults); TypeError as it would."""
    data = {**_DEFAULTS, **values}
    if len(data) != len(_DEFAULTS) or not _REQUIRED.issubset(values):
        raise TypeError(f"Case needs {sorted(_REQUIRED - values.keys())}, has no {sorted(values.keys() - CASE_FIELDS)}")
    return data


def new_case(**values: Any) -> Case:
    """Return a Case like `Case(**values)` does, without its per-field frozen `__init__` (~7x faster)."""
    new = object.__new__(Case)
    object.__setattr__(new, "__dict__", case_fields(values))
    return new


def case_of(values: dict[str, Any]) -> Case:
    """Return the Case of a dict holding every field (a stored row), taking the dict as its own."""
    if len(values) != len(CASE_FIELDS) or not CASE_FIELDS.issuperset(values):
        raise TypeError(f"a Case row needs exactly the fields {sorted(CASE_FIELDS)}")
    new = object.__new__(Case)
    object.__setattr__(new, "__dict__", values)
    return new


def evolve(case: Case, **changes: Any) -> Case:
    """Return a copy of `case` with `changes` (dataclasses.replace re-runs __init__: ~20x slower on 60 fields)."""
    data = {**case.__dict__, **changes}
    if len(data) != len(CASE_FIELDS):  # a key that is not a field made the dict longer
        raise TypeError(f"Case has no field {sorted(changes.keys() - CASE_FIELDS)}")
    new = object.__new__(Case)
    object.__setattr__(new, "__dict__", data)
    return new


_AUDIT_SET: Final = tuple(getattr(AuditEntry, f.name).__set__ for f in fields(AuditEntry))


def audit_entry(
    case_id: int,
    at_ms: int,
    actor: str,
    role: str,
    action: str,
    from_state: str,
    to_state: str,
    reason: str,
    evidence: tuple[str, ...],
    detail: dict[str, Any],
) -> AuditEntry:
    """Return `AuditEntry(...)` of every field, through its slots instead of the frozen `__init__` (~3x faster)."""
    entry = object.__new__(AuditEntry)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _AUDIT_SET
    s0(entry, case_id)
    s1(entry, at_ms)
    s2(entry, actor)
    s3(entry, role)
    s4(entry, action)
    s5(entry, from_state)
    s6(entry, to_state)
    s7(entry, reason)
    s8(entry, evidence)
    s9(entry, detail)
    return entry
