"""The territory tree district → 办事处 → 片区 → 网格: lookups and GeoJSON out of a District; GeoJSON in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

import shapely
from shapely.geometry import Polygon, shape

from cloud.grid.errors import DistrictError, UnknownTerritory

Level = Literal["district", "office", "area", "grid"]
LEVELS: Final[tuple[Level, ...]] = get_args(Level)
# GB/T 30428.1 codes grow by level: county 6, street 3, community 3, grid sequence 2.
CODE_LENGTH: Final[Mapping[Level, int]] = {"district": 6, "office": 9, "area": 12, "grid": 14}
PARENT_LEVEL: Final[Mapping[Level, Level | None]] = {
    "district": None,
    "office": "district",
    "area": "office",
    "grid": "area",
}


@dataclass(frozen=True, slots=True)
class Territory:
    """One node of the tree: its code, level, names, parent code and outline (lon/lat)."""

    code: str
    level: Level
    name: str
    name_en: str
    parent: str | None
    polygon: Polygon


@dataclass(frozen=True)
class District:
    """A district with its offices, areas and grids; validated on construction."""

    root: Territory
    offices: tuple[Territory, ...]
    areas: tuple[Territory, ...]
    grids: tuple[Territory, ...]
    _by_code: dict[str, Territory] = field(init=False, repr=False, compare=False)
    _children: dict[str, tuple[Territory, ...]] = field(init=False, repr=False, compare=False)
    _scopes: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, Territory] = {}
        for level, nodes in zip(LEVELS, ((self.root,), self.offices, self.areas, self.grids), strict=True):
            for node in nodes:
                check_node(node, level, by_code)
                by_code[node.code] = node
        children: dict[str, list[Territory]] = {code: [] for code in by_code}
        for node in by_code.values():
            if node.parent is not None:
                children[node.parent].append(node)
        # Each grid's scope set: itself and every ancestor, so `contains` is one set lookup.
        scopes: dict[str, frozenset[str]] = {}
        for grid in self.grids:
            chain = {grid.code}
            parent = grid.parent
            while parent is not None:
                chain.add(parent)
                parent = by_code[parent].parent
            scopes[grid.code] = frozenset(chain)
        object.__setattr__(self, "_by_code", by_code)
        object.__setattr__(self, "_children", {k: tuple(sorted(v, key=_code)) for k, v in children.items()})
        object.__setattr__(self, "_scopes", scopes)

    @property
    def code(self) -> str:
        """The county code (6 digits)."""
        return self.root.code

    def territory(self, code: str) -> Territory:
        """Return the territory with `code`; raise UnknownTerritory if there is none."""
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownTerritory(f"no territory with code {code!r} in district {self.root.code}") from None

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def children(self, code: str) -> tuple[Territory, ...]:
        """Return the direct children of a territory, ordered by code (a grid has none)."""
        self.territory(code)
        return self._children[code]

    def ancestors(self, code: str) -> tuple[Territory, ...]:
        """Return the ancestors of a territory, nearest first (grid → area, office, district); itself excluded."""
        chain: list[Territory] = []
        parent = self.territory(code).parent
        while parent is not None:
            node = self._by_code[parent]
            chain.append(node)
            parent = node.parent
        return tuple(chain)

    def contains(self, scope_code: str, grid_code: str) -> bool:
        """Whether grid `grid_code` lies in territory `scope_code` (a grid contains itself; unknown → False)."""
        scopes = self._scopes.get(grid_code)
        return scopes is not None and scope_code in scopes

    def grids_in(self, scope_code: str) -> tuple[Territory, ...]:
        """Return the grids inside a territory, ordered by code."""
        self.territory(scope_code)
        return tuple(g for g in self.grids if scope_code in self._scopes[g.code])

    def level(self, level: Level) -> tuple[Territory, ...]:
        """Return every territory of one level."""
        return {"district": (self.root,), "office": self.offices, "area": self.areas, "grid": self.grids}[level]

    def geojson(self, level: str | None = None) -> dict[str, Any]:
        """Return a GeoJSON FeatureCollection of one level, or of all levels (district first)."""
        if level is not None and level not in LEVELS:
            raise DistrictError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        levels = LEVELS if level is None else (level,)
        return {
            "type": "FeatureCollection",
            "features": [feature(node) for lv in levels for node in self.level(lv)],
        }


def _code(node: Territory) -> str:
    return node.code


def check_node(node: Territory, level: Level, seen: Mapping[str, Territory]) -> None:
    """Check one node against the tree built so far (parents come before children)."""
    where = f"{level} {node.code!r}"

    def fail(message: str) -> DistrictError:
        error = DistrictError(f"{where}: {message}")
        error.code = node.code
        return error

    if node.level != level:
        raise fail(f"level is {node.level!r}")
    if node.code in seen:
        raise fail("duplicate code")
    if not (node.code.isascii() and node.code.isdigit() and len(node.code) == CODE_LENGTH[level]):
        raise fail(f"code must be {CODE_LENGTH[level]} digits")
    expected = PARENT_LEVEL[level]
    if expected is None:
        if node.parent is not None:
            raise fail(f"a district has no parent, got {node.parent!r}")
    else:
        parent = seen.get(node.parent or "")
        if parent is None:
            raise fail(f"parent {node.parent!r} is not a known {expected}")
        if parent.level != expected:
            raise fail(f"parent {node.parent!r} is at level {parent.level}, expected {expected}")
        if not node.code.startswith(parent.code):
            raise fail(f"code does not start with its parent's code {parent.code}")
    if not isinstance(node.polygon, Polygon) or node.polygon.is_empty or not node.polygon.is_valid:
        raise fail("outline must be a valid, non-empty Polygon")


def feature(node: Territory) -> dict[str, Any]:
    """Return one territory as a GeoJSON Feature (coordinates as lists, lon/lat)."""
    geometry = json.loads(shapely.to_geojson(node.polygon))
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "code": node.code,
            "level": node.level,
            "name": node.name,
            "name_en": node.name_en,
            "parent": node.parent,
        },
    }


def district_from_features(features: Iterable[Any]) -> District:
    """Build a District from GeoJSON features; errors name the feature (index and code)."""
    by_level: dict[str, list[Territory]] = {lv: [] for lv in LEVELS}
    codes: dict[str, int] = {}
    for index, raw in enumerate(features):
        props = raw.get("properties") if isinstance(raw, dict) else None
        code = props.get("code") if isinstance(props, dict) else None
        where = f"feature #{index} (code {code!r})"
        if not isinstance(props, dict):
            raise DistrictError(f"{where}: no properties object")
        missing = [k for k in ("code", "level", "name", "parent") if k not in props]
        if missing:
            raise DistrictError(f"{where}: missing properties {', '.join(missing)}")
        level = props["level"]
        if level not in LEVELS:
            raise DistrictError(f"{where}: unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        if not isinstance(code, str):
            raise DistrictError(f"{where}: code must be a string")
        if code in codes:
            raise DistrictError(f"{where}: duplicate code, first seen at feature #{codes[code]}")
        codes[code] = index
        try:
            polygon = shape(raw["geometry"])
        except (KeyError, TypeError, AttributeError, ValueError, shapely.errors.GeometryTypeError) as exc:
            raise DistrictError(f"{where}: bad geometry: {exc}") from exc
        if not isinstance(polygon, Polygon):
            raise DistrictError(f"{where}: geometry must be a Polygon, got {polygon.geom_type}")
        parent = props["parent"]
        by_level[level].append(
            Territory(
                code=code,
                level=level,
                name=str(props["name"]),
                name_en=str(props.get("name_en", "")),
                parent=None if parent is None else str(parent),
                polygon=polygon,
            )
        )
    # Every parent must exist: report the first dangling one by its feature.
    for nodes in by_level.values():
        for node in nodes:
            if node.parent is not None and node.parent not in codes:
                raise DistrictError(
                    f"feature #{codes[node.code]} (code {node.code!r}): dangling parent {node.parent!r}"
                )
    if len(by_level["district"]) != 1:
        raise DistrictError(f"expected exactly one district feature, got {len(by_level['district'])}")
    try:
        return District(
            root=by_level["district"][0],
            offices=tuple(sorted(by_level["office"], key=_code)),
            areas=tuple(sorted(by_level["area"], key=_code)),
            grids=tuple(sorted(by_level["grid"], key=_code)),
        )
    except DistrictError as exc:
        code = getattr(exc, "code", None)
        raise DistrictError(f"feature #{codes.get(code or '', '?')} ({exc})") from exc


def load_district(path: str | Path) -> District:
    """Load and validate a district from a GeoJSON FeatureCollection file."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DistrictError(f"{path}: cannot read GeoJSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise DistrictError(f"{path}: not a GeoJSON FeatureCollection")
    try:
        return district_from_features(doc["features"])
    except DistrictError as exc:
        raise DistrictError(f"{path}: {exc}") from exc
