"""Case KPIs: the cases reported in a period (as they stand now) in; per grid, area, office, department or person out.

Definitions (governance cases reported in [start, end); times in natural ms; ratios are None when the
denominator is 0):

- 上报数 reported: cases reported in the period.
- 立案数 registered: of those, cases that were registered (立案), self-handled ones included.
- 应结案数 due: registered cases that are neither cancelled nor on hold (挂账 cases are left out).
- 结案率 closure_rate = closed / due.
- 按期结案率 on_time_closure_rate = closed on or before their overall deadline (moved by 延期 and 挂账) / due.
- 应处置数 dispatched: due cases that were dispatched (派遣) or self-handled.
- 处置率 handling_rate = handled (处置反馈 given, including every later state) / dispatched.
- 按期处置率 on_time_handling_rate = handled on or before the handling deadline in force when signed for
  (self-handled cases count as on time) / dispatched.
- 返工率 rework_rate = handled cases sent back at least once (返工) / handled.
- 延期率 extension_rate = dispatched cases extended at least once (延期) / dispatched.
- MTTA mtta_ms = mean of (签收 − 上报) over signed cases; MTTR mttr_ms = mean of (处置反馈 − 上报 − time on
  hold) over handled cases.
- 误报率 false_alarm_rate = sensor cases cancelled as false_alarm / sensor cases reported.
- alerts_per_case = alerts linked to sensor cases / sensor cases reported.
- 设备在线率 device_online_rate = Σ online time / Σ expected time of the unit's devices, from the fleet
  (`uptime`: unit code → (online_ms, expected_ms)); None when no figure is given.

A case counts for the grid, area and office it lies in, and for the department it is (or was last)
dispatched to — the one that handled it when it was handled. A person's KPIs count the cases whose 处置反馈
that person gave (handling) and the cases that person reported or signed for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import fmean
from typing import Final, Literal

from cloud.incidents.model import AuditEntry, CancelReason, Case, CaseKind, CaseState, Source

Unit = Literal["grid", "area", "office", "department", "district"]
UNITS: Final[tuple[Unit, ...]] = ("grid", "area", "office", "department", "district")


@dataclass(frozen=True, slots=True)
class Kpis:
    """The KPIs of one unit over one period (see the module docstring)."""

    reported: int
    registered: int
    due: int
    closed: int
    closed_on_time: int
    dispatched: int
    handled: int
    handled_on_time: int
    reworked: int
    extended: int
    sensor_cases: int
    false_alarms: int
    alerts: int
    closure_rate: float | None
    on_time_closure_rate: float | None
    handling_rate: float | None
    on_time_handling_rate: float | None
    rework_rate: float | None
    extension_rate: float | None
    mtta_ms: float | None
    mttr_ms: float | None
    false_alarm_rate: float | None
    alerts_per_case: float | None
    device_online_rate: float | None


def _ratio(a: int, b: int) -> float | None:
    return None if b == 0 else a / b


def _registered(case: Case) -> bool:
    return case.registered_ms is not None


def _handled(case: Case) -> bool:
    return case.handled_ms is not None


def compute(cases: Iterable[Case], uptime: tuple[int, int] | None = None) -> Kpis:
    """Return the KPIs of a set of cases (one unit, one period)."""
    gov = [c for c in cases if c.kind == CaseKind.GOVERNANCE]
    registered = [c for c in gov if _registered(c)]
    due = [c for c in registered if c.state not in (CaseState.CANCELLED, CaseState.ON_HOLD)]
    closed = [c for c in due if c.state == CaseState.CLOSED and c.closed_ms is not None]
    on_time_closed = [c for c in closed if c.due_ms is None or (c.closed_ms is not None and c.closed_ms <= c.due_ms)]
    dispatched = [c for c in due if c.dispatches > 0 or c.handled_by is not None]
    handled = [c for c in dispatched if _handled(c)]
    on_time_handled = [
        c for c in handled if c.handle_due_ms is None or (c.handled_ms is not None and c.handled_ms <= c.handle_due_ms)
    ]
    signed = [c for c in gov if c.signed_ms is not None]
    sensor = [c for c in gov if c.source == Source.SENSOR]
    false_alarms = [c for c in sensor if c.cancel_reason == CancelReason.FALSE_ALARM]
    alerts = sum(c.alert_count for c in sensor)
    reworked = [c for c in handled if c.reworks > 0]
    extended = [c for c in dispatched if c.extensions > 0]
    return Kpis(
        reported=len(gov),
        registered=len(registered),
        due=len(due),
        closed=len(closed),
        closed_on_time=len(on_time_closed),
        dispatched=len(dispatched),
        handled=len(handled),
        handled_on_time=len(on_time_handled),
        reworked=len(reworked),
        extended=len(extended),
        sensor_cases=len(sensor),
        false_alarms=len(false_alarms),
        alerts=alerts,
        closure_rate=_ratio(len(closed), len(due)),
        on_time_closure_rate=_ratio(len(on_time_closed), len(due)),
        handling_rate=_ratio(len(handled), len(dispatched)),
        on_time_handling_rate=_ratio(len(on_time_handled), len(dispatched)),
        rework_rate=_ratio(len(reworked), len(handled)),
        extension_rate=_ratio(len(extended), len(dispatched)),
        mtta_ms=fmean(c.signed_ms - c.reported_ms for c in signed if c.signed_ms is not None) if signed else None,
        mttr_ms=fmean(c.handled_ms - c.reported_ms - c.paused_ms for c in handled if c.handled_ms is not None)
        if handled
        else None,
        false_alarm_rate=_ratio(len(false_alarms), len(sensor)),
        alerts_per_case=_ratio(alerts, len(sensor)),
        device_online_rate=None if uptime is None or uptime[1] <= 0 else uptime[0] / uptime[1],
    )


def unit_of(case: Case, unit: Unit) -> str | None:
    """Return the code of the unit a case counts for."""
    if unit == "department":
        if case.handled_unit is not None and case.handled_by is not None and case.assignee_kind == "department":
            return case.handled_unit
        return case.department
    return getattr(case, unit)  # type: ignore[no-any-return]


def by_unit(cases: Iterable[Case], unit: Unit, uptime: Mapping[str, tuple[int, int]] | None = None) -> dict[str, Kpis]:
    """Return the KPIs per unit code (cases with no such unit are left out), ordered by code."""
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        code = unit_of(case, unit)
        if code is not None:
            groups[code].append(case)
    figures = uptime or {}
    return {code: compute(groups[code], figures.get(code)) for code in sorted(groups)}


@dataclass(frozen=True, slots=True)
class PersonKpis:
    """One person's figures over a period."""

    reported: int
    signed: int
    handled: int
    handled_on_time: int
    reworked: int
    on_time_handling_rate: float | None
    rework_rate: float | None
    mtta_ms: float | None


def by_person(cases: Iterable[Case], audit: Iterable[AuditEntry]) -> dict[str, PersonKpis]:
    """Return per-person figures from the audit trail of the period's cases (system actors left out)."""
    by_id = {c.id: c for c in cases}
    reported: dict[str, int] = defaultdict(int)
    signed: dict[str, list[int]] = defaultdict(list)
    for entry in audit:
        case = by_id.get(entry.case_id)
        if case is None or entry.actor.startswith("system:"):
            continue
        if entry.action == "report":
            reported[entry.actor] += 1
        elif entry.action == "sign" and entry.from_state == CaseState.DISPATCHED:
            signed[entry.actor].append(entry.at_ms - case.reported_ms)
    handled: dict[str, list[Case]] = defaultdict(list)
    for case in by_id.values():
        if case.handled_by is not None and not case.handled_by.startswith("system:"):
            handled[case.handled_by].append(case)
    out = {}
    for person in sorted(set(reported) | set(signed) | set(handled)):
        mine = handled.get(person, [])
        on_time = [c for c in mine if c.handle_due_ms is None or (c.handled_ms or 0) <= c.handle_due_ms]
        reworked = [c for c in mine if c.reworks > 0]
        waits = signed.get(person, [])
        out[person] = PersonKpis(
            reported=reported.get(person, 0),
            signed=len(waits),
            handled=len(mine),
            handled_on_time=len(on_time),
            reworked=len(reworked),
            on_time_handling_rate=_ratio(len(on_time), len(mine)),
            rework_rate=_ratio(len(reworked), len(mine)),
            mtta_ms=fmean(waits) if waits else None,
        )
    return out
