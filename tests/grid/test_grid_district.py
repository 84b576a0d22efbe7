"""The bundled district: counts, codes, exact tiling, determinism, the tree API and GeoJSON load/dump."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from shapely import STRtree, unary_union
from shapely.geometry import Point, box

from cloud.grid import District, DistrictError, UnknownTerritory, default_district, generate_district, load_district
from cloud.grid.generate import EAST, NORTH, SEAT_BLOCK, SOUTH, WEST

SEAT_GRID = "41010210100101"
# The demo gateway's devices (gridwatch/demo.py, edge_agent/agent.example.yaml), all labelled SEAT_GRID.
DEMO_POINTS = [
    (34.8012, 113.5401),
    (34.7990, 113.5330),
    (34.7981, 113.5312),
    (34.8020, 113.5380),
    (34.7995, 113.5350),
    (34.8000, 113.5300),
    (34.7990, 113.5350),
]


def km2(lon_span: float, lat_span: float, lat: float) -> float:
    """Return the area of a small lon/lat box in km² (local equirectangular approximation)."""
    return lon_span * 111.32 * math.cos(math.radians(lat)) * lat_span * 110.574


def test_counts_match_the_reference_district() -> None:
    """The sample district has 5 offices, 30 areas and 189 grids, each area 6 or 7 grids."""
    d = default_district()
    assert (len(d.offices), len(d.areas), len(d.grids)) == (5, 30, 189)
    sizes = sorted(len(d.children(a.code)) for a in d.areas)
    assert set(sizes) == {6, 7}
    assert all(len(d.children(o.code)) == 6 for o in d.offices)


def test_box_is_about_99_km2_around_the_reference_point() -> None:
    """The district covers ~99 km² and holds 34.80° N, 113.53° E."""
    d = default_district()
    area = km2(EAST - WEST, NORTH - SOUTH, (NORTH + SOUTH) / 2)
    assert 97 < area < 101
    assert d.root.polygon.contains(Point(113.53, 34.80))


def test_grids_tile_the_box_exactly() -> None:
    """The union of the grids is the box, with no gap, and no two grids overlap by any area."""
    d = default_district()
    outline = box(WEST, SOUTH, EAST, NORTH)
    polygons = [g.polygon for g in d.grids]
    union = unary_union(polygons)
    assert union.difference(outline).area == 0.0
    assert outline.difference(union).area == 0.0
    assert math.isclose(sum(p.area for p in polygons), outline.area, rel_tol=1e-12)
    tree = STRtree(polygons)
    pairs = 0
    for i, polygon in enumerate(polygons):
        for j in tree.query(polygon):
            if j > i:
                pairs += 1
                assert polygon.intersection(polygons[j]).area == 0.0, (d.grids[i].code, d.grids[int(j)].code)
    assert pairs > 189  # neighbours were actually compared


def test_every_level_tiles_its_parent() -> None:
    """Each office, area and the district is exactly the union of its children, and every polygon is valid."""
    d = default_district()
    for node in (d.root, *d.offices, *d.areas):
        union = unary_union([c.polygon for c in d.children(node.code)])
        assert union.symmetric_difference(node.polygon).area == 0.0, node.code
    assert all(t.polygon.is_valid for t in (*d.offices, *d.areas, *d.grids))


def test_polygons_are_irregular() -> None:
    """Grids are not a plain lattice: their sizes differ and most have more than four corners."""
    d = default_district()
    areas = [g.polygon.area for g in d.grids]
    assert max(areas) / min(areas) > 1.5
    assert sum(len(g.polygon.exterior.coords) > 5 for g in d.grids) > 150


def test_codes_follow_gb_t_30428_1() -> None:
    """Codes are county 6 + street 3 + community 3 + grid 2 digits, each extending its parent's."""
    d = default_district()
    assert d.code == "410102"
    for level, nodes, length in (("office", d.offices, 9), ("area", d.areas, 12), ("grid", d.grids, 14)):
        for node in nodes:
            assert node.level == level
            assert len(node.code) == length
            assert node.code.isdigit()
            assert node.parent is not None
            assert node.code.startswith(node.parent)
    assert len({t.code for t in (*d.offices, *d.areas, *d.grids)}) == 5 + 30 + 189


def test_seat_grid_holds_every_demo_device() -> None:
    """Grid 41010210100101 exists and contains every demo device position and the whole seat block."""
    d = default_district()
    seat = d.territory(SEAT_GRID)
    assert seat.level == "grid"
    assert seat.polygon.contains(box(*SEAT_BLOCK))
    for lat, lon in DEMO_POINTS:
        assert seat.polygon.contains(Point(lon, lat)), (lat, lon)


def test_names_are_chinese_and_english() -> None:
    """Offices are 街道办事处, areas 第N片区, grids 第N网格, each with an English name."""
    d = default_district()
    assert all(o.name.endswith("街道办事处") and o.name_en.endswith("Office") for o in d.offices)
    assert d.territory("410102101003").name == "第3片区"
    assert d.territory("41010210100102").name_en == "Grid 2"


def geojson_digest(district: District) -> str:
    """Return a hash of the district's GeoJSON text."""
    return hashlib.sha256(json.dumps(district.geojson(), sort_keys=True).encode()).hexdigest()


def test_generation_is_deterministic_across_processes() -> None:
    """Two builds, one in a fresh interpreter with another hash seed, give the same GeoJSON."""
    here = geojson_digest(generate_district())
    assert here == geojson_digest(generate_district())
    code = (
        "import hashlib, json; from cloud.grid import generate_district;"
        "print(hashlib.sha256(json.dumps(generate_district().geojson(), sort_keys=True).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


def test_tree_navigation() -> None:
    """territory, children, ancestors and contains walk the tree both ways."""
    d = default_district()
    chain = [t.code for t in d.ancestors(SEAT_GRID)]
    assert chain == ["410102101001", "410102101", "410102"]
    assert d.ancestors("410102") == ()
    assert SEAT_GRID in [g.code for g in d.children("410102101001")]
    assert d.children(SEAT_GRID) == ()
    for scope in (SEAT_GRID, *chain):
        assert d.contains(scope, SEAT_GRID)
    assert not d.contains("410102102", SEAT_GRID)
    assert not d.contains("410102101", "41010299999999")
    assert len(d.grids_in("410102101")) == sum(len(d.children(a.code)) for a in d.children("410102101"))
    with pytest.raises(UnknownTerritory, match="999"):
        d.territory("410102999")
    with pytest.raises(KeyError):
        d.children("nope")


def test_geojson_levels_and_properties() -> None:
    """geojson() gives one FeatureCollection per level (or all), with the five properties."""
    d = default_district()
    assert len(d.geojson("grid")["features"]) == 189
    assert len(d.geojson("office")["features"]) == 5
    everything = d.geojson()
    assert len(everything["features"]) == 1 + 5 + 30 + 189
    props = everything["features"][-1]["properties"]
    assert set(props) == {"code", "level", "name", "name_en", "parent"}
    json.dumps(everything)  # plain JSON types only
    with pytest.raises(DistrictError, match="unknown level"):
        d.geojson("street")


def test_geojson_round_trip(tmp_path: Path) -> None:
    """A district dumped as GeoJSON loads back equal, polygons included."""
    d = default_district()
    path = tmp_path / "district.geojson"
    path.write_text(json.dumps(d.geojson()), encoding="utf-8")
    loaded = load_district(path)
    assert loaded == d


def broken(mutate: Any) -> dict[str, Any]:
    """Return the sample district's GeoJSON after `mutate(features)`."""
    doc = default_district().geojson()
    mutate(doc["features"])
    return doc


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda fs: fs[7]["properties"].update(level="street"), r"feature #7 .*unknown level 'street'"),
        (lambda fs: fs[40]["properties"].update(parent="410102101099"), r"feature #40 .*dangling parent"),
        (lambda fs: fs.append(fs[50]), r"feature #225 .*duplicate code, first seen at feature #50"),
        (lambda fs: fs[3]["properties"].pop("name"), r"feature #3 .*missing properties name"),
        (lambda fs: fs[9].update(geometry={"type": "Point", "coordinates": [113.5, 34.8]}), r"feature #9 .*Polygon"),
        (
            lambda fs: fs[100]["properties"].update(parent="410102101"),
            r"feature #100 .*parent '410102101' is at level office, expected area",
        ),
        (lambda fs: fs[100]["properties"].update(code="123"), r"feature #100 .*14 digits"),
        (
            lambda fs: fs.append({**fs[0], "properties": {**fs[0]["properties"], "code": "410103"}}),
            "exactly one district",
        ),
    ],
)
def test_load_district_names_the_bad_feature(tmp_path: Path, mutate: Any, message: str) -> None:
    """A broken district file is refused with an error naming the offending feature."""
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(broken(mutate)), encoding="utf-8")
    with pytest.raises(DistrictError, match=message):
        load_district(path)


def test_load_district_refuses_non_geojson(tmp_path: Path) -> None:
    """A file that is not a FeatureCollection is refused, naming the file."""
    path = tmp_path / "x.geojson"
    path.write_text('{"type": "Feature"}', encoding="utf-8")
    with pytest.raises(DistrictError, match=r"x\.geojson: not a GeoJSON FeatureCollection"):
        load_district(path)
