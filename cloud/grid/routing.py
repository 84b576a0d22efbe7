"""The routing table: category + grid in, who handles it (a department 条 or the grid team 块) out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.grid.directory import Department, Directory
from cloud.grid.errors import RoutingError
from cloud.grid.territory import LEVELS, District
from cloud.grid.yamlconf import load_model

DEFAULT_PATH: Final = Path(__file__).with_name("routing.yaml")
DEVICE_HEALTH: Final = "device_health"


@dataclass(frozen=True, slots=True)
class Assignee:
    """Who a case goes to: a department by its code, or a grid team by its grid code."""

    kind: Literal["department", "grid_team"]
    code: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Override(_Strict):
    """Within `scope` (an office, area or grid code), send `category` to a department or the grid team."""

    scope: str
    category: str
    department: str | None = None
    grid_team: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.department is None) == (not self.grid_team):
            raise ValueError("an override needs exactly one of 'department' or 'grid_team: true'")
        return self


class RoutingTable(_Strict):
    """The routing configuration: the maintenance team, grid-level categories and scoped overrides."""

    maintenance: str
    grid_team_categories: list[str] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)


def load_routing(path: str | Path | None = None) -> RoutingTable:
    """Load and validate a routing table YAML (the bundled sample by default)."""
    return load_model(Path(path) if path is not None else DEFAULT_PATH, RoutingTable, RoutingError)


class Router:
    """Answer category + grid → Assignee; cross-references are checked once, here.

    Order: the most specific override whose scope holds the grid (first listed wins a tie); then
    device_health → the maintenance team; then grid-level categories → the grid team; then the
    category's owner department.
    """

    def __init__(self, district: District, departments: Directory | Iterable[Department], table: RoutingTable) -> None:
        depts = departments.departments if isinstance(departments, Directory) else tuple(departments)
        self.district = district
        self.table = table
        self._owner = {c: d.code for d in depts for c in d.categories}
        codes = {d.code for d in depts}
        if table.maintenance not in codes:
            raise RoutingError(f"maintenance: unknown department {table.maintenance!r}")
        for i, category in enumerate(table.grid_team_categories):
            if category not in self._owner:
                raise RoutingError(f"grid_team_categories.{i}: no department owns {category!r}")
        for i, o in enumerate(table.overrides):
            if o.scope not in district:
                raise RoutingError(f"overrides.{i}.scope: unknown territory {o.scope!r}")
            if o.category not in self._owner:
                raise RoutingError(f"overrides.{i}.category: no department owns {o.category!r}")
            if o.department is not None and o.department not in codes:
                raise RoutingError(f"overrides.{i}.department: unknown department {o.department!r}")
        # Deeper scopes first; a stable sort keeps the listed order among equals.
        self._overrides = sorted(table.overrides, key=lambda o: -LEVELS.index(district.territory(o.scope).level))

    def route(self, category: str, grid_code: str) -> Assignee:
        """Return who handles `category` in grid `grid_code`; raise RoutingError if nobody does."""
        if grid_code not in self.district or self.district.territory(grid_code).level != "grid":
            raise RoutingError(f"{grid_code!r} is not a grid of district {self.district.code}")
        for o in self._overrides:
            if o.category == category and self.district.contains(o.scope, grid_code):
                return Assignee("grid_team", grid_code) if o.grid_team else Assignee("department", str(o.department))
        if category == DEVICE_HEALTH:
            return Assignee("department", self.table.maintenance)
        if category in self.table.grid_team_categories:
            return Assignee("grid_team", grid_code)
        owner = self._owner.get(category)
        if owner is None:
            raise RoutingError(f"no department owns category {category!r}")
        return Assignee("department", owner)


@cache
def default_router() -> Router:
    """Return the router of the bundled district, directory and routing table (built once)."""
    from cloud.grid.directory import default_directory
    from cloud.grid.generate import default_district

    return Router(default_district(), default_directory(), load_routing())
