"""Roles and data scope: an actor and a case in; whether the actor may see it, as Python and as SQL.

The rule, one for the page and every query:

- territory roles (grid_worker, area_lead, office_lead, acceptor, shift_lead, dispatcher, leader) see the
  governance cases whose grid lies in their scope (a grid, 片区, 办事处 or district code);
- department roles (dept_lead, dept_handler) see the governance cases currently assigned to their
  department (scope = department code);
- maintenance sees maintenance cases in its territory, and those with no grid (a gateway's outage);
- admin configures and sees no case; so does an unknown role.

A governance case whose place is unknown (no grid) belongs to the district as a whole: only actors
scoped to the district code see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cloud.incidents.model import Case, CaseKind
from cloud.incidents.ports import District


class Role(StrEnum):
    """Governance roles."""

    GRID_WORKER = "grid_worker"  # 网格员
    AREA_LEAD = "area_lead"  # 片区长
    OFFICE_LEAD = "office_lead"  # 办事处
    ACCEPTOR = "acceptor"  # 受理员
    SHIFT_LEAD = "shift_lead"  # 值班长
    DISPATCHER = "dispatcher"  # 派遣员
    DEPT_LEAD = "dept_lead"
    DEPT_HANDLER = "dept_handler"
    MAINTENANCE = "maintenance"  # 运维
    LEADER = "leader"  # 领导
    ADMIN = "admin"
    SYSTEM = "system"  # automatic actions, attributed to system:<rule>


TERRITORY_ROLES: Final = frozenset(
    {
        Role.GRID_WORKER,
        Role.AREA_LEAD,
        Role.OFFICE_LEAD,
        Role.ACCEPTOR,
        Role.SHIFT_LEAD,
        Role.DISPATCHER,
        Role.LEADER,
    }
)
DEPARTMENT_ROLES: Final = frozenset({Role.DEPT_LEAD, Role.DEPT_HANDLER})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a username, a role and a scope (a territory code, or a department code)."""

    username: str
    role: str
    scope: str = ""

    @classmethod
    def system(cls, rule: str) -> Actor:
        """Return the actor of an automatic action, `system:<rule>`."""
        return cls(f"system:{rule}", Role.SYSTEM.value, "")


def visible(actor: Actor, case: Case, district: District) -> bool:
    """Whether `actor` may see `case` (the same rule as `scope_sql`)."""
    role = actor.role
    if role == Role.SYSTEM:
        return True
    if role in TERRITORY_ROLES:
        if case.kind != CaseKind.GOVERNANCE or not actor.scope:
            return False
        if case.grid is None:
            return case.district is not None and actor.scope == case.district
        return district.contains(actor.scope, case.grid)
    if role in DEPARTMENT_ROLES:
        return case.kind == CaseKind.GOVERNANCE and bool(actor.scope) and case.department == actor.scope
    if role == Role.MAINTENANCE:
        return case.kind == CaseKind.MAINTENANCE and (
            case.grid is None or (bool(actor.scope) and district.contains(actor.scope, case.grid))
        )
    return False


def scope_sql(actor: Actor, alias: str = "") -> tuple[str, tuple[str, ...]]:
    """Return a WHERE fragment and its parameters that keep only the cases `actor` may see."""
    p = f"{alias}." if alias else ""
    territory = f"? IN ({p}grid, {p}area, {p}office, {p}district)"
    role = actor.role
    if role == Role.SYSTEM:
        return "1 = 1", ()
    if not actor.scope and role != Role.MAINTENANCE:
        return "1 = 0", ()
    if role in TERRITORY_ROLES:
        return f"({p}kind = ? AND {territory})", (CaseKind.GOVERNANCE.value, actor.scope)
    if role in DEPARTMENT_ROLES:
        return f"({p}kind = ? AND {p}department = ?)", (CaseKind.GOVERNANCE.value, actor.scope)
    if role == Role.MAINTENANCE:
        if not actor.scope:
            return f"({p}kind = ? AND {p}grid IS NULL)", (CaseKind.MAINTENANCE.value,)
        return f"({p}kind = ? AND ({p}grid IS NULL OR {territory}))", (CaseKind.MAINTENANCE.value, actor.scope)
    return "1 = 0", ()
