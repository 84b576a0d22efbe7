"""Departments (条), grid teams (块) and parts (部件): the directory YAML in, validated lookups out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from cloud.grid.errors import DirectoryError, PartIdError, UnknownTerritory
from cloud.grid.territory import District
from cloud.grid.yamlconf import load_model

DEFAULT_PATH: Final = Path(__file__).with_name("directory.yaml")
CATEGORY_PATTERN: Final = r"^[a-z][a-z0-9_]*$"


@dataclass(frozen=True, slots=True)
class PartId:
    """A 16-digit part id (部件标识码): county 6 + 大类 2 + 小类 2 + serial 6."""

    county: str
    major: str
    minor: str
    serial: str

    def __str__(self) -> str:
        return f"{self.county}{self.major}{self.minor}{self.serial}"


def parse_part_id(text: str) -> PartId:
    """Split a 16-digit part id into its fields; raise PartIdError on anything else."""
    if not isinstance(text, str) or len(text) != 16 or not (text.isascii() and text.isdigit()):
        raise PartIdError(f"part id must be 16 digits, got {text!r}")
    part = PartId(county=text[:6], major=text[6:8], minor=text[8:10], serial=text[10:])
    for name in ("major", "minor", "serial"):
        if set(getattr(part, name)) == {"0"}:
            raise PartIdError(f"part id {text!r}: {name} class/serial may not be all zeros")
    return part


@dataclass(frozen=True, slots=True)
class Department:
    """A department (条) and the problem categories it owns."""

    code: str
    name: str
    name_en: str
    categories: frozenset[str]


@dataclass(frozen=True, slots=True)
class Part:
    """A part (部件): its id, the category its problems fall under, its owner department and grid."""

    part_id: str
    category: str
    owner_department: str
    grid: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class GridTeam:
    """The grid team (块) of one grid; its code is the grid code."""

    code: str
    grid: str
    name: str
    name_en: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DepartmentDoc(_Strict):
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    name: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    categories: list[str] = Field(min_length=1)


class _PartDoc(_Strict):
    id: str
    category: str = Field(pattern=CATEGORY_PATTERN)
    owner: str
    grid: str
    name: str = ""


class _MajorClassDoc(_Strict):
    name: str
    name_en: str


class _DirectoryDoc(_Strict):
    departments: list[_DepartmentDoc] = Field(min_length=1)
    major_classes: dict[str, _MajorClassDoc] = Field(default_factory=dict)
    parts: list[_PartDoc] = Field(default_factory=list)


@dataclass(frozen=True)
class Directory:
    """The departments and parts of a district; each category has exactly one owner department."""

    departments: tuple[Department, ...]
    parts: tuple[Part, ...] = ()
    major_classes: dict[str, tuple[str, str]] = field(default_factory=dict)

    _departments: dict[str, Department] = field(init=False, repr=False, compare=False)
    _owners: dict[str, Department] = field(init=False, repr=False, compare=False)
    _parts: dict[str, Part] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_departments", {d.code: d for d in self.departments})
        object.__setattr__(self, "_owners", {c: d for d in self.departments for c in d.categories})
        object.__setattr__(self, "_parts", {p.part_id: p for p in self.parts})

    def department(self, code: str) -> Department:
        """Return the department with `code`; raise DirectoryError if unknown."""
        try:
            return self._departments[code]
        except KeyError:
            raise DirectoryError(f"no department {code!r}") from None

    def owner(self, category: str) -> Department | None:
        """Return the department that owns `category`, or None."""
        return self._owners.get(category)

    def categories(self) -> frozenset[str]:
        """Return every category some department owns."""
        return frozenset(self._owners)

    def part(self, part_id: str) -> Part:
        """Return the part with `part_id`; raise DirectoryError if unknown."""
        try:
            return self._parts[part_id]
        except KeyError:
            raise DirectoryError(f"no part {part_id!r}") from None

    def parts_in(self, grid_code: str) -> tuple[Part, ...]:
        """Return the parts installed in one grid."""
        return tuple(p for p in self.parts if p.grid == grid_code)


def directory_from_doc(doc: _DirectoryDoc, where: str, district: District | None) -> Directory:
    """Check cross-references of a parsed directory and build it; errors name the key path."""
    departments: list[Department] = []
    owners: dict[str, str] = {}
    codes: set[str] = set()
    for i, d in enumerate(doc.departments):
        if d.code in codes:
            raise DirectoryError(f"{where}: departments.{i}.code: duplicate department {d.code!r}")
        codes.add(d.code)
        for j, category in enumerate(d.categories):
            if not re.match(CATEGORY_PATTERN, category):
                raise DirectoryError(f"{where}: departments.{i}.categories.{j}: bad category name {category!r}")
            if category in owners:
                raise DirectoryError(
                    f"{where}: departments.{i}.categories.{j}: {category!r} is already owned by {owners[category]}"
                )
            owners[category] = d.code
        departments.append(Department(d.code, d.name, d.name_en, frozenset(d.categories)))
    parts: list[Part] = []
    seen: set[str] = set()
    for i, p in enumerate(doc.parts):
        key = f"{where}: parts.{i}"
        try:
            pid = parse_part_id(p.id)
        except PartIdError as exc:
            raise DirectoryError(f"{key}.id: {exc}") from exc
        if p.id in seen:
            raise DirectoryError(f"{key}.id: duplicate part {p.id!r}")
        seen.add(p.id)
        if p.owner not in codes:
            raise DirectoryError(f"{key}.owner: unknown department {p.owner!r}")
        if p.category not in owners:
            raise DirectoryError(f"{key}.category: no department owns {p.category!r}")
        if doc.major_classes and pid.major not in doc.major_classes:
            raise DirectoryError(f"{key}.id: unknown major class {pid.major!r}")
        if district is not None:
            if pid.county != district.code:
                raise DirectoryError(f"{key}.id: county {pid.county} is not the district's {district.code}")
            try:
                level = district.territory(p.grid).level
            except UnknownTerritory as exc:
                raise DirectoryError(f"{key}.grid: {exc}") from exc
            if level != "grid":
                raise DirectoryError(f"{key}.grid: {p.grid!r} is a {level}, not a grid")
        parts.append(Part(p.id, p.category, p.owner, p.grid, p.name))
    majors = {k: (v.name, v.name_en) for k, v in doc.major_classes.items()}
    return Directory(tuple(departments), tuple(parts), majors)


def load_directory(path: str | Path | None = None, district: District | None = None) -> Directory:
    """Load and validate a directory YAML (the bundled sample by default), checking parts against `district`."""
    where = Path(path) if path is not None else DEFAULT_PATH
    return directory_from_doc(load_model(where, _DirectoryDoc, DirectoryError), str(where), district)


@cache
def default_directory() -> Directory:
    """Return the bundled sample directory, checked against the bundled district (loaded once)."""
    from cloud.grid.generate import default_district

    return load_directory(None, default_district())


def grid_teams(district: District) -> tuple[GridTeam, ...]:
    """Return one grid team per grid of the district, coded by its grid code."""
    return tuple(grid_team(district, g.code) for g in district.grids)


def grid_team(district: District, grid_code: str) -> GridTeam:
    """Return the grid team of one grid; raise UnknownTerritory for a code that is not a grid."""
    grid = district.territory(grid_code)
    if grid.level != "grid":
        raise UnknownTerritory(f"{grid_code!r} is a {grid.level}, not a grid")
    area, office = (a for a in district.ancestors(grid_code)[:2])
    return GridTeam(
        code=grid.code,
        grid=grid.code,
        name=f"{office.name}{area.name}{grid.name}网格员队伍",
        name_en=f"{office.name_en}, {area.name_en}, {grid.name_en} grid team",
    )
