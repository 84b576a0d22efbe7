"""The seams the case engine consumes: territory tree, point → grid, routing table, standards, calendar.

`cloud.grid`, `cloud.worktime` and `cloud.incidents.standards` provide the real ones; tests use small
fakes. Each protocol names only what the engine calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloud.incidents.model import Recovery, Urgency


class District(Protocol):
    """The territory tree: district → 办事处 → 片区 → 网格 (only what scope checks need)."""

    @property
    def code(self) -> str:
        """The district's own code (the root of the tree)."""
        ...

    def ancestors(self, grid_code: str) -> Sequence[Any]:
        """Return the grid's ancestors (codes, or territories with `.code`), nearest first or last."""
        ...

    def contains(self, scope_code: str, grid_code: str) -> bool:
        """Whether `grid_code` lies in territory `scope_code` (a grid contains itself)."""
        ...


class Locator(Protocol):
    """Point → grid (cloud.grid.GridIndex)."""

    def locate(self, lat: float, lon: float) -> str | None:
        """Return the grid code at a point, or None outside the district."""
        ...


class RoutedTo(Protocol):
    """A routing answer (cloud.grid Assignee)."""

    @property
    def kind(self) -> str: ...

    @property
    def code(self) -> str: ...


class Router(Protocol):
    """The routing table: category + grid → department or grid team."""

    def route(self, category: str, grid_code: str) -> RoutedTo:
        """Return who handles `category` in `grid_code`."""
        ...


class Calendar(Protocol):
    """Deadline arithmetic in work time (a calendar with holidays) or natural time."""

    def due(self, start_ms: int, duration_ms: int, mode: str) -> int:
        """Return the instant `duration_ms` of `mode` time after `start_ms`."""
        ...

    def elapsed(self, start_ms: int, end_ms: int, mode: str) -> int:
        """Return the `mode` time between two instants (0 when end ≤ start)."""
        ...


class NaturalCalendar:
    """Every hour counts, whatever the mode (tests; natural-time-only deployments)."""

    def due(self, start_ms: int, duration_ms: int, mode: str) -> int:
        """Return `start_ms + duration_ms`."""
        return start_ms + duration_ms

    def elapsed(self, start_ms: int, end_ms: int, mode: str) -> int:
        """Return `end_ms - start_ms`, at least 0."""
        return max(0, end_ms - start_ms)


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """One escalation rule: when `trigger` happens (and `after_ms` more passed), do `action` for `notify`."""

    trigger: str  # "sign_overdue" | "step_overdue" | "yellow" | "red"
    action: str  # "escalate" | "notify" | "supervise"
    notify: tuple[str, ...] = ()
    step: str | None = None  # step_overdue only: which step (None: any)
    after_ms: int = 0


STEPS = ("accept", "verify", "register", "dispatch", "sign", "handle", "check", "close")

DEFAULT_ESCALATION = (
    EscalationStep("sign_overdue", "escalate", ("dept_lead", "shift_lead")),
    EscalationStep("yellow", "notify", ("dept_lead",)),
    EscalationStep("red", "supervise", ("leader", "shift_lead")),
)


@dataclass(frozen=True, slots=True)
class Policy:
    """What the standards table says for one category × urgency, in the engine's terms (ms)."""

    clock_mode: str = "work"
    steps: Mapping[str, int] = field(default_factory=dict)
    overall_ms: int = 3 * 86_400_000
    yellow_at: float = 0.8
    red_at: float = 1.0
    escalation: tuple[EscalationStep, ...] = DEFAULT_ESCALATION
    recovery: Recovery = Recovery.HUMAN_CHECK_REQUIRED
    stable_for_ms: int = 0
    veto_ms: int = 0
    self_handling: bool = False
    open311_hidden: bool = False


class Policies(Protocol):
    """Category × urgency → Policy."""

    def policy(self, category: str, urgency: Urgency) -> Policy:
        """Return the policy of a category at an urgency (a default when the table has none)."""
        ...


class PolicyTable:
    """A dict-backed Policies with a default (tests, and the fallback for unknown categories)."""

    def __init__(self, table: Mapping[str, Policy], default: Policy | None = None) -> None:
        self.table = dict(table)
        self.default = default or Policy()

    def policy(self, category: str, urgency: Urgency) -> Policy:
        """Return `table[f"{category}/{urgency}"]`, else `table[category]`, else the default."""
        return self.table.get(f"{category}/{urgency.value}") or self.table.get(category) or self.default


def territory_codes(district: District, grid: str) -> tuple[str | None, str | None, str | None] | None:
    """Return (area, office, district) codes of a grid from the tree, or None for an unknown grid."""
    try:
        ancestors = district.ancestors(grid)
    except KeyError:  # cloud.grid's UnknownTerritory is a KeyError
        return None
    by_level: dict[str, str] = {}
    plain: list[str] = []
    for node in ancestors:
        if isinstance(node, str):
            plain.append(node)
        else:
            by_level[str(node.level)] = str(node.code)
    if plain:  # bare codes: GB/T 30428.1 codes are hierarchical, so a shorter code is a higher level
        plain.sort(key=len, reverse=True)
        by_level.update(zip(("area", "office", "district"), plain, strict=False))
    return by_level.get("area"), by_level.get("office"), by_level.get("district")
