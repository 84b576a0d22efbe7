"""Data scope: for random users and random cases, lists, counts, reads and actions agree with `visible`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.db import Database
from cloud.incidents.engine import CaseNotFound
from cloud.incidents.loop import ActionRefused, apply_action
from cloud.incidents.model import Action, ActionKind, Case, CaseKind, CaseState
from cloud.incidents.ports import territory_codes
from cloud.incidents.roles import Actor, Role, scope_sql, visible
from cloud.incidents.store import CaseFilter
from tests.incidents.incidents_rig import DISTRICT, T0, engine

GRIDS = [g.code for g in DISTRICT.grids[:12]] + [DISTRICT.grids[-1].code]
TERRITORIES = sorted({c for g in GRIDS for c in (g, *(a.code for a in DISTRICT.ancestors(g)))})
DEPARTMENTS = ["RQGS", "SWJ", "CGJ", "STHJ", "YW"]
ROLES = [r.value for r in Role if r != Role.SYSTEM] + ["nobody"]


@st.composite
def cases(draw: st.DrawFn, case_id: int) -> Case:
    """A case anywhere: either kind, any state, a grid or none, a department or a grid team or nobody."""
    grid = draw(st.sampled_from([*GRIDS, None]))
    area, office, district = territory_codes(DISTRICT, grid) if grid else (None, None, DISTRICT.code)  # type: ignore[misc]
    assignee = draw(st.sampled_from([None, "grid_team", *DEPARTMENTS]))
    kind, code = (
        (None, None)
        if assignee is None
        else ("grid_team", grid)
        if assignee == "grid_team"
        else ("department", assignee)
    )
    return Case(
        id=case_id,
        kind=draw(st.sampled_from(list(CaseKind))).value,
        source="sensor",
        state=draw(st.sampled_from([s for s in CaseState if s not in (CaseState.CLOSED, CaseState.CANCELLED)])).value,
        category="gas_leak",
        urgency="normal",
        reported_ms=T0 + case_id,
        updated_ms=T0 + case_id,
        grid=grid,
        area=area,
        office=office,
        district=district,
        assignee_kind=kind,
        assignee_code=code,
        department=code if kind == "department" else None,
    )


actors = st.builds(
    Actor,
    username=st.sampled_from(["a", "b"]),
    role=st.sampled_from(ROLES),
    scope=st.sampled_from([*TERRITORIES, *DEPARTMENTS, "", "999999"]),
)
populations = st.integers(1, 10).flatmap(lambda n: st.tuples(*(cases(i + 1) for i in range(n))))
ACTIONS = [Action(k, reason="r", outcome=None) for k in ActionKind]


@settings(max_examples=200, deadline=None)
@given(population=populations, actor=actors, action=st.sampled_from(ACTIONS))
def test_no_user_sees_or_acts_on_a_case_outside_their_scope(
    population: tuple[Case, ...], actor: Actor, action: Action
) -> None:
    """SQL lists and counts return exactly the visible cases; an invisible case can be neither read nor acted on."""
    eng = engine(Database.open(":memory:"))
    for case in population:
        eng.store.insert(case)
    expected = {c.id for c in population if visible(actor, c, DISTRICT)}
    assert {c.id for c in eng.cases(actor, limit=100)} == expected
    assert eng.count(actor) == len(expected)
    assert {c.id for c in eng.cases(actor, CaseFilter(open_only=True), limit=100)} == expected
    for case in population:
        if case.id in expected:
            assert eng.case(actor, case.id) == case
            continue
        with pytest.raises(CaseNotFound):
            eng.case(actor, case.id)
        with pytest.raises(ActionRefused) as refused:
            apply_action(case, action, actor, T0, eng.ctx)
        assert refused.value.reason in {"scope", "role"}
    if actor.role == Role.ADMIN:
        assert expected == set()
        assert scope_sql(actor)[0] == "1 = 0"
