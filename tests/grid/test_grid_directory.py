"""Departments, parts and grid teams: part ids parse strictly, the sample directory validates, bad ones do not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.grid import (
    DirectoryError,
    PartId,
    PartIdError,
    default_directory,
    default_district,
    grid_team,
    grid_teams,
    load_directory,
    parse_part_id,
)
from cloud.grid.directory import DEFAULT_PATH

SENSOR_CATEGORIES = {
    "gas_leak",
    "tunnel_gas",
    "water_pressure",
    "drainage_overflow",
    "manhole_cover",
    "air_quality",
    "noise",
    "device_health",
}


def test_parse_the_demo_part_id() -> None:
    """4101021501000003 is county 410102, 大类 15, 小类 01, serial 000003."""
    part = parse_part_id("4101021501000003")
    assert part == PartId("410102", "15", "01", "000003")
    assert str(part) == "4101021501000003"


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A[0-9]{6}[1-9][0-9][1-9][0-9][0-9]{5}[1-9]\Z"))
def test_parse_round_trips_valid_ids(text: str) -> None:
    """Any 16-digit id with non-zero classes and serial parses and prints back unchanged."""
    assert str(parse_part_id(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_parse_refuses_anything_but_16_digits(text: str) -> None:
    """Text that is not exactly 16 ASCII digits raises PartIdError (a ValueError), never anything else."""
    if len(text) == 16 and text.isascii() and text.isdigit():
        return
    with pytest.raises(PartIdError):
        parse_part_id(text)


@pytest.mark.parametrize("text", ["4101020001000003", "4101021500000003", "4101021501000000", "410102150100000３"])
def test_parse_refuses_zero_classes_and_wide_digits(text: str) -> None:
    """All-zero class or serial fields and non-ASCII digits are malformed."""
    with pytest.raises(ValueError, match="part id"):
        parse_part_id(text)


def test_sample_directory_covers_every_sensor_category() -> None:
    """Every sensor rule category and some public-report ones have exactly one owner department."""
    directory = default_directory()
    assert directory.categories() >= SENSOR_CATEGORIES
    assert {"illegal_parking", "garbage", "road_damage"} <= directory.categories()
    owner = directory.owner("gas_leak")
    assert owner is not None
    assert owner.name.startswith("燃气公司")
    assert directory.owner("water_pressure") == directory.department("SWJ")
    assert directory.owner("nothing") is None
    counted = [c for d in directory.departments for c in d.categories]
    assert len(counted) == len(set(counted))


def test_sample_parts_sit_in_real_grids() -> None:
    """The demo's parts are in the directory with their owner, category and the seat grid."""
    directory = default_directory()
    district = default_district()
    part = directory.part("4101021501000003")
    assert (part.category, part.owner_department, part.grid) == ("tunnel_gas", "ZJJ", "41010210100101")
    for p in directory.parts:
        assert district.territory(p.grid).level == "grid"
        assert parse_part_id(p.part_id).county == district.code
    assert len(directory.parts_in("41010210100101")) == 5
    with pytest.raises(DirectoryError, match="no part"):
        directory.part("4101029999999999")


def test_grid_teams_one_per_grid() -> None:
    """Every grid has one team, coded by its grid code and named after its office, area and grid."""
    district = default_district()
    teams = grid_teams(district)
    assert [t.code for t in teams] == [g.code for g in district.grids]
    team = grid_team(district, "41010210100101")
    assert team.name == "青石街道办事处第1片区第1网格网格员队伍"
    with pytest.raises(KeyError, match="not a grid"):
        grid_team(district, "410102101001")


def write_variant(tmp_path: Path, edit: object) -> Path:
    """Write the sample directory after applying `edit(doc)`; return its path."""
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    edit(doc)  # type: ignore[operator]
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["departments"][1]["categories"].append("gas_leak"),
            r"departments\.2\.categories\.0: 'gas_leak' is already owned by SWJ",
        ),
        (lambda d: d["departments"][0].update(colour="red"), r"departments\.0\.colour: Extra inputs"),
        (lambda d: d["departments"].append(dict(d["departments"][0])), r"departments\.8\.code: duplicate"),
        (lambda d: d["parts"][2].update(id="41010215010000"), r"parts\.2\.id: part id must be 16 digits"),
        (lambda d: d["parts"][2].update(owner="XXX"), r"parts\.2\.owner: unknown department"),
        (lambda d: d["parts"][2].update(category="ufo"), r"parts\.2\.category: no department owns 'ufo'"),
        (lambda d: d["parts"][2].update(grid="41010299999901"), r"parts\.2\.grid: no territory"),
        (lambda d: d["parts"][2].update(grid="410102101001"), r"parts\.2\.grid: .* is a area, not a grid"),
        (lambda d: d["parts"][2].update(id="4101031501000003"), r"parts\.2\.id: county 410103"),
        (lambda d: d["parts"][2].update(id="4101029901000003"), r"parts\.2\.id: unknown major class '99'"),
        (lambda d: d["parts"].append(dict(d["parts"][0])), r"parts\.10\.id: duplicate part"),
    ],
)
def test_bad_directories_name_the_key_path(tmp_path: Path, edit: object, message: str) -> None:
    """A directory with a broken entry is refused with an error naming the file and the key path."""
    path = write_variant(tmp_path, edit)
    with pytest.raises(DirectoryError, match=message):
        load_directory(path, default_district())


def test_directory_without_district_skips_grid_checks(tmp_path: Path) -> None:
    """Loaded without a district, a directory still checks itself but cannot check grids."""
    path = write_variant(tmp_path, lambda d: d["parts"][2].update(grid="41010299999901"))
    assert load_directory(path).part("4101021501000003").grid == "41010299999901"
