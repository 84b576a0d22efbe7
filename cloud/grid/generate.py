"""The bundled sample district, generated deterministically: parameters in, a District (5 / 30 / 189) out.

The box (~11 km × 9 km around 34.80° N, 113.53° E) is cut by 10 wobbly north–south lines into columns;
each column is cut by bent east–west polylines into 3 bands and each band into 6 or 7 cells. A column ×
band is a 片区 (area), two columns are a 办事处 (office), a cell is a 网格 (grid). Neighbouring cells
share the very same vertices, so the grids tile the box exactly. Jitter comes from a keyed hash, not a
random generator, so every machine and every version builds the same district.

Numbering starts at the district seat (the old town, where the demo's devices stand) and then follows
reading order (north → south, west → east): office 101 holds the seat, area 101001 too, and grid
41010210100101 is the seat grid, stretched to hold the whole demo block.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Final

from shapely import unary_union
from shapely.geometry import Polygon, box
from shapely.geometry.polygon import orient

from cloud.grid.territory import District, Territory

COUNTY: Final = "410102"
WEST, EAST, SOUTH, NORTH = 113.469, 113.589, 34.7595, 34.8405
COLUMNS: Final = 10
BANDS: Final = 3
# The seat block: every demo device (gridwatch demo, agent.example.yaml) stands inside it.
SEAT_BLOCK: Final = (113.5300, 34.7981, 113.5401, 34.8020)  # west, south, east, north
SEAT_MARGIN: Final = 0.0002  # degrees (~20 m) kept between the block and the seat grid's edges
LINE_WOBBLE: Final = 0.0004  # degrees of east–west wobble of the column lines (~37 m)
LINE_SAMPLES: Final = 36  # vertices per column line, so the wobble shows
BAND_JITTER: Final = 0.0025  # degrees a band boundary may move north or south (~280 m)
CUT_JITTER: Final = 0.15  # fraction of a cell height a cut may move
BEND: Final = 0.0004  # degrees each vertex of a cut may bend (~45 m)
SEVEN_GRID_AREAS: Final = 9  # 21 areas of 6 grids + 9 of 7 = 189
DIGITS: Final = 7  # coordinates rounded to 1e-7° (~1 cm)

OFFICE_NAMES: Final = (
    ("青石街道办事处", "Qingshi Subdistrict Office"),
    ("柳湖街道办事处", "Liuhu Subdistrict Office"),
    ("杏园街道办事处", "Xingyuan Subdistrict Office"),
    ("松岗街道办事处", "Songgang Subdistrict Office"),
    ("荷塘街道办事处", "Hetang Subdistrict Office"),
)


def noise(*key: object) -> float:
    """Return a reproducible number in [-1, 1) for a key (a keyed hash, not a random generator)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def r(value: float) -> float:
    """Round a coordinate once, where it is made, so shared vertices stay identical."""
    return round(value, DIGITS)


@dataclass(frozen=True, slots=True)
class Cut:
    """An east–west polyline across one column: left end, two bends, right end (lon, lat)."""

    points: tuple[tuple[float, float], ...]

    @property
    def ys(self) -> list[float]:
        """The latitudes of the cut's vertices."""
        return [p[1] for p in self.points]


class Lines:
    """The 11 north–south column lines: x at any y by linear interpolation between wobbling samples."""

    def __init__(self) -> None:
        self.width = (EAST - WEST) / COLUMNS
        self.sample_ys = [r(SOUTH + (NORTH - SOUTH) * i / LINE_SAMPLES) for i in range(LINE_SAMPLES + 1)]
        self.sample_xs = [
            [
                r(self.base(k) + (0.0 if k in (0, COLUMNS) else LINE_WOBBLE * noise("line", k, i)))
                for i in range(LINE_SAMPLES + 1)
            ]
            for k in range(COLUMNS + 1)
        ]
        self.extra: dict[int, set[float]] = defaultdict(set)

    def base(self, k: int) -> float:
        """The straight position of line k."""
        return WEST if k == 0 else EAST if k == COLUMNS else WEST + k * self.width

    def x(self, k: int, y: float) -> float:
        """Return line k's longitude at latitude y."""
        ys, xs = self.sample_ys, self.sample_xs[k]
        if y <= ys[0]:
            return xs[0]
        step = (NORTH - SOUTH) / LINE_SAMPLES
        i = min(int((y - SOUTH) / step), LINE_SAMPLES - 1)
        t = (y - ys[i]) / (ys[i + 1] - ys[i])
        return r(xs[i] + t * (xs[i + 1] - xs[i]))

    def vertices(self, k: int, low: float, high: float) -> list[tuple[float, float]]:
        """Return line k's vertices strictly between two latitudes, south to north."""
        # The box edges are straight: their samples add nothing but vertices.
        samples = set() if k in (0, COLUMNS) else set(self.sample_ys)
        ys = sorted(y for y in samples | self.extra[k] if low < y < high)
        return [(self.x(k, y), y) for y in ys]


def make_cut(lines: Lines, column: int, y: float, tag: object) -> Cut:
    """Return a bent cut across `column` around latitude `y`; its ends are registered on both lines."""
    ys = [r(y + BEND * noise("bend", column, tag, j)) for j in range(4)]
    left, right = lines.x(column, ys[0]), lines.x(column + 1, ys[3])
    span = right - left
    xs = [
        left,
        r(left + span * (1 / 3 + 0.08 * noise("bx", column, tag, 1))),
        r(left + span * (2 / 3 + 0.08 * noise("bx", column, tag, 2))),
        right,
    ]
    return Cut(tuple(zip(xs, ys, strict=True)))


def straight_cut(lines: Lines, column: int, y: float) -> Cut:
    """Return a box edge across `column` (south or north)."""
    return Cut(((lines.x(column, y), y), (lines.x(column + 1, y), y)))


def seat_column_band() -> tuple[int, int]:
    """Return the (column, band) of the seat block."""
    width = (EAST - WEST) / COLUMNS
    west, south, east, north = SEAT_BLOCK
    column = int(((west + east) / 2 - WEST) / width)
    band = int(((south + north) / 2 - SOUTH) / ((NORTH - SOUTH) / BANDS))
    return column, band


def grids_per_area() -> dict[tuple[int, int], int]:
    """Return how many grids each (column, band) area gets: 6, or 7 for nine hash-chosen areas."""
    seat = seat_column_band()
    # The seat area keeps 6 cells: its taller cells make room for the seat block.
    ranked = sorted(
        ((c, b) for c in range(COLUMNS) for b in range(BANDS) if (c, b) != seat), key=lambda cb: noise("seven", *cb)
    )
    counts = {(c, b): 6 for c in range(COLUMNS) for b in range(BANDS)}
    for area in ranked[:SEVEN_GRID_AREAS]:
        counts[area] = 7
    return counts


def seat_clearance(cut: Cut) -> float:
    """Return how far north (+) or south (-) a cut must move, the shorter way, to clear the seat block."""
    _, south, _, north = SEAT_BLOCK
    low, high = south - SEAT_MARGIN, north + SEAT_MARGIN
    ys = cut.ys
    if max(ys) < low or min(ys) > high:
        return 0.0
    down, up = max(ys) - low, high - min(ys)
    return -down - 1e-6 if down <= up else up + 1e-6


def column_cuts(lines: Lines, column: int, counts: dict[tuple[int, int], int]) -> list[tuple[Cut, int]]:
    """Return a column's cuts south to north, each with the band of the cell above it."""
    height = (NORTH - SOUTH) / BANDS
    bounds = [SOUTH] + [SOUTH + height * b + BAND_JITTER * noise("band", column, b) for b in range(1, BANDS)] + [NORTH]
    seat = seat_column_band()
    cuts: list[tuple[Cut, int]] = [(straight_cut(lines, column, SOUTH), 0)]
    for band in range(BANDS):
        n = counts[(column, band)]
        cell = (bounds[band + 1] - bounds[band]) / n
        for i in range(1, n):
            y = bounds[band] + cell * (i + CUT_JITTER * noise("cut", column, band, i))
            cut = make_cut(lines, column, y, (band, i))
            if (column, band) == seat and (delta := seat_clearance(cut)):
                cut = make_cut(lines, column, y + delta, (band, i))
            cuts.append((cut, band))
        if band + 1 < BANDS:
            cuts.append((make_cut(lines, column, bounds[band + 1], ("band", band + 1)), band + 1))
    cuts.append((straight_cut(lines, column, NORTH), BANDS))
    for (low, _), (high, _) in pairwise(cuts):
        if not max(low.ys) < min(high.ys):
            raise AssertionError(f"cuts cross in column {column}")  # a parameter change broke the layout
    return cuts


def cell_polygon(lines: Lines, column: int, low: Cut, high: Cut) -> Polygon:
    """Return the cell between two cuts of a column, sharing every vertex with its neighbours."""
    right = lines.vertices(column + 1, low.points[-1][1], high.points[-1][1])
    left = lines.vertices(column, low.points[0][1], high.points[0][1])
    ring = [*low.points, *right, *reversed(high.points), *reversed(left)]
    return orient(Polygon(ring))


def build_cells() -> dict[tuple[int, int], list[Polygon]]:
    """Return the cells of every (column, band) area, south to north."""
    lines = Lines()
    counts = grids_per_area()
    per_column = [column_cuts(lines, c, counts) for c in range(COLUMNS)]
    # Register every cut end on its line first: a cell's side must carry its neighbours' vertices too.
    for c, cuts in enumerate(per_column):
        for cut, _ in cuts:
            lines.extra[c].add(cut.points[0][1])
            lines.extra[c + 1].add(cut.points[-1][1])
    cells: dict[tuple[int, int], list[Polygon]] = defaultdict(list)
    for c, cuts in enumerate(per_column):
        for (low, band), (high, _) in pairwise(cuts):
            cells[(c, band)].append(cell_polygon(lines, c, low, high))
    return cells


def reading_order(seat: Polygon | None, polygons: list[Polygon]) -> list[int]:
    """Return indices in numbering order: the one holding the seat first, then north → south, west → east."""

    def key(i: int) -> tuple[bool, float, float]:
        c = polygons[i].centroid
        return (not (seat is not None and polygons[i].contains(seat)), -round(c.y, 3), round(c.x, 3))

    return sorted(range(len(polygons)), key=key)


def union(polygons: list[Polygon]) -> Polygon:
    """Return the union of tiles that share edges exactly, as one oriented Polygon."""
    merged = unary_union(polygons)
    if not isinstance(merged, Polygon):
        raise AssertionError(f"tiles do not merge into one polygon: {merged.geom_type}")
    return orient(merged)


def generate_district() -> District:
    """Build the sample district (a new object on every call; default_district() caches one)."""
    cells = build_cells()
    west, south, east, north = SEAT_BLOCK
    seat = box(west, south, east, north)
    office_columns = [list(range(2 * o, 2 * o + 2)) for o in range(COLUMNS // 2)]
    office_polys = [union([p for c in cols for b in range(BANDS) for p in cells[(c, b)]]) for cols in office_columns]
    offices: list[Territory] = []
    areas: list[Territory] = []
    grids: list[Territory] = []
    for o_seq, o in enumerate(reading_order(seat, office_polys), start=1):
        o_code = f"{COUNTY}{100 + o_seq:03d}"
        name, name_en = OFFICE_NAMES[o_seq - 1]
        offices.append(Territory(o_code, "office", name, name_en, COUNTY, office_polys[o]))
        keys = [(c, b) for c in office_columns[o] for b in range(BANDS)]
        area_polys = [union(cells[k]) for k in keys]
        for a_seq, a in enumerate(reading_order(seat, area_polys), start=1):
            a_code = f"{o_code}{a_seq:03d}"
            areas.append(Territory(a_code, "area", f"第{a_seq}片区", f"Area {a_seq}", o_code, area_polys[a]))
            grid_polys = cells[keys[a]]
            for g_seq, g in enumerate(reading_order(seat, grid_polys), start=1):
                g_code = f"{a_code}{g_seq:02d}"
                grids.append(Territory(g_code, "grid", f"第{g_seq}网格", f"Grid {g_seq}", a_code, grid_polys[g]))
    root = Territory(COUNTY, "district", "示例区", "Sample District", None, union(office_polys))
    return District(root=root, offices=tuple(offices), areas=tuple(areas), grids=tuple(grids))


@cache
def default_district() -> District:
    """Return the bundled sample district (built once per process)."""
    return generate_district()
