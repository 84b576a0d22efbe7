"""One-pass and memoized automatic steps of a new case equal the step-by-step path, field for field, entry for entry."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.grid.errors import GridError
from cloud.incidents.autochain import AutoChain
from cloud.incidents.clocks import Clock, with_timer
from cloud.incidents.loop import ActionRefused, Context, apply_action, apply_actions
from cloud.incidents.model import (
    Action,
    ActionKind,
    Assignee,
    AuditEntry,
    Case,
    CaseKind,
    CaseState,
    Outcome,
    Urgency,
    new_case,
)
from cloud.incidents.policies import StandardsPolicies
from cloud.incidents.ports import Calendar, NaturalCalendar
from cloud.incidents.roles import Actor
from cloud.worktime import default_calendar
from gateway.alerts import AlertState
from tests.incidents.incidents_rig import DISTRICT, GAS_HANDLER, HOUR, ROUTER, STANDARDS, T0, alert, engine

A = ActionKind
POLICIES = StandardsPolicies(STANDARDS)
CALENDARS: dict[str, Calendar] = {"natural": NaturalCalendar(), "work": default_calendar()}
YEAR_MS = 365 * 24 * HOUR
Steps = tuple[tuple[Action, Actor], ...]


def fresh(case_id: int, kind: CaseKind, category: str, urgency: Urgency, grid: str | None, now: int) -> Case:
    """Return a new sensor case as the intake builds it, reported at `now`."""
    policy = POLICIES.policy(category, urgency)
    return new_case(
        id=case_id,
        kind=kind.value,
        source="sensor",
        state=CaseState.REPORTED.value,
        category=category,
        urgency=urgency.value,
        reported_ms=now,
        updated_ms=now,
        title=f"case {case_id}",
        recovery=policy.recovery.value,
        grid=grid,
        device=f"dev-{case_id}",
        dedup_key=f"device:dev-{case_id}/{category}/rule",
        alert_count=1,
        last_alert_ms=now,
        clock_mode=policy.clock_mode,
    )


def auto_steps(kind: CaseKind, category: str, grid: str | None, broken: bool) -> Steps:
    """Return the intake's automatic steps; `broken` drops the dispatch assignee (refused mid-chain)."""
    if kind == CaseKind.MAINTENANCE:
        return ((Action(A.DISPATCH, "maintenance queue", assignee=Assignee("maintenance", "YW")), Actor.system("m")),)
    steps: Steps = (
        (Action(A.ACCEPT, "sensor report"), Actor.system("intake")),
        (Action(A.REGISTER, "sensor report"), Actor.system("intake")),
    )
    if grid is None:
        return steps
    try:
        routed = ROUTER.route(category, grid)
    except GridError:
        return steps
    assignee = None if broken else Assignee(routed.kind, routed.code)
    return (*steps, (Action(A.DISPATCH, f"routing: {category}", assignee=assignee), Actor.system("routing")))


def step_by_step(case: Case, steps: Steps, now: int, ctx: Context) -> tuple[Case, list[AuditEntry], bool]:
    """The reference: start and enter the clock, then `apply_action` one step at a time until one is refused."""
    policy = ctx.policy(case)
    case = with_timer(ctx.clock.enter(ctx.clock.start(case, policy, now), policy, now), policy)
    entries: list[AuditEntry] = []
    for action, actor in steps:
        try:
            case, entry = apply_action(case, action, actor, now, ctx)
        except ActionRefused:
            return case, entries, True
        entries.append(entry)
    return case, entries, False


@settings(max_examples=300, deadline=None)
@given(
    category=st.sampled_from(STANDARDS.categories()),
    urgency=st.sampled_from(list(Urgency)),
    kind=st.sampled_from(list(CaseKind)),
    grid=st.sampled_from([None, *(g.code for g in DISTRICT.grids[::17])]),
    calendar=st.sampled_from(sorted(CALENDARS)),
    first=st.integers(T0 - YEAR_MS // 2, T0 + YEAR_MS // 2),
    now=st.integers(T0 - YEAR_MS // 2, T0 + YEAR_MS // 2),
    broken=st.booleans(),
)
def test_automatic_steps_in_one_pass_equal_the_step_by_step_path(
    category: str, urgency: Urgency, kind: CaseKind, grid: str | None, calendar: str, first: int, now: int, broken: bool
) -> None:
    """For any category, urgency, place, calendar and instant, one pass (fresh or memoized, from a case or from
    a new case's fields) equals step by step."""
    ctx = Context(DISTRICT, POLICIES, Clock(CALENDARS[calendar]))
    steps = auto_steps(kind, category, grid, broken)
    chain = AutoChain(ctx)
    chain.apply(fresh(1, kind, category, urgency, grid, first), steps, first)  # memoizes the shape at `first`
    expected = step_by_step(fresh(2, kind, category, urgency, grid, now), steps, now, ctx)
    case, entries, refused = apply_actions(fresh(2, kind, category, urgency, grid, now), steps, now, ctx, entered=True)
    assert (case, entries, refused is not None) == expected
    assert list(case.__dict__) == list(expected[0].__dict__)  # same field order (the API serializes it)
    assert chain.apply(fresh(2, kind, category, urgency, grid, now), steps, now) == expected
    opened = chain.open(fresh(2, kind, category, urgency, grid, now).__dict__, steps, now)  # the intake's entry
    assert opened == expected
    assert list(opened[0].__dict__) == list(expected[0].__dict__)


SCRIPTS: tuple[Steps, ...] = (
    (
        (Action(A.SIGN), GAS_HANDLER),
        (Action(A.EXTEND, "rain", extend_ms=6 * HOUR), Actor.system("test")),
        (Action(A.HOLD, "waiting for parts"), Actor.system("test")),
        (Action(A.RESUME), Actor.system("test")),
        (Action(A.SUPERVISE, "slow"), Actor.system("test")),
        (Action(A.REPORT_HANDLED), GAS_HANDLER),
        (Action(A.CHECK, outcome=Outcome.PASS), GAS_HANDLER),  # refused: separation of duties
        (Action(A.CHECK, outcome=Outcome.PASS), Actor.system("recovery")),
    ),
    (  # through 签收 and 处置 at one instant: the handling deadline is left behind
        (Action(A.SIGN), GAS_HANDLER),
        (Action(A.SUPERVISE, "slow"), Actor.system("test")),
        (Action(A.REPORT_HANDLED), GAS_HANDLER),
        (Action(A.CHECK, outcome=Outcome.PASS), Actor.system("recovery")),
        (Action(A.CLOSE), Actor.system("recovery")),
    ),
)


@settings(max_examples=100, deadline=None)
@given(
    calendar=st.sampled_from(sorted(CALENDARS)),
    now=st.integers(T0, T0 + YEAR_MS // 2),
    script=st.sampled_from(SCRIPTS),
    cut=st.integers(0, 7),
)
def test_any_action_chain_in_one_pass_equals_applying_each_action(
    calendar: str, now: int, script: Steps, cut: int
) -> None:
    """A chain of state changes, 延期, 挂账, resume and a refused step equals `apply_action` in turn at one instant."""
    ctx = Context(DISTRICT, POLICIES, Clock(CALENDARS[calendar]))
    start = fresh(3, CaseKind.GOVERNANCE, "gas_leak", Urgency.NORMAL, DISTRICT.grids[0].code, now)
    dispatched, _, _ = step_by_step(start, auto_steps(CaseKind.GOVERNANCE, "gas_leak", start.grid, False), now, ctx)
    steps = script[cut:]
    expected_case, expected_entries, refused = dispatched, [], False
    for action, actor in steps:
        try:
            expected_case, entry = apply_action(expected_case, action, actor, now, ctx)
        except ActionRefused:
            refused = True
            break
        expected_entries.append(entry)
    case, entries, refusal = apply_actions(dispatched, steps, now, ctx)
    assert (case, entries, refusal is not None) == (expected_case, expected_entries, refused)


# Fields the intake fills from the alert, not from the chain.
FIXED = frozenset(
    {"title", "area", "office", "district", "lat", "lon", "part_id", "device", "gateway", "dedup_key", "group_key"}
)


def test_the_intake_opens_new_cases_with_the_memoized_chain_and_the_stepwise_result() -> None:
    """Two gas alerts a day apart open cases whose fields and trails equal the step-by-step path's."""
    eng = engine()
    for i, ts in enumerate((T0, T0 + 24 * HOUR + 7)):
        eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, ts, device=f"gas-{i}")])
    for case in eng.store.cases(Actor.system("test")):
        ref = fresh(case.id, CaseKind.GOVERNANCE, "gas_leak", Urgency.NORMAL, case.grid, case.reported_ms)
        steps = auto_steps(CaseKind.GOVERNANCE, "gas_leak", case.grid, False)
        expected, entries, _ = step_by_step(ref, steps, case.reported_ms, eng.ctx)
        lifecycle = {k: v for k, v in expected.__dict__.items() if k not in FIXED}
        assert {k: v for k, v in case.__dict__.items() if k not in FIXED} == lifecycle
        trail = eng.store.audit_trail(case.id)[1:]  # after the report entry
        assert [(e.action, e.actor, e.to_state, e.at_ms, e.detail) for e in trail] == [
            (e.action, e.actor, e.to_state, e.at_ms, e.detail) for e in entries
        ]
