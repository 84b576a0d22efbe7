"""The routing table: defaults, scoped overrides with the most specific winning, and validation at load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cloud.grid import (
    Assignee,
    Router,
    RoutingError,
    RoutingTable,
    default_directory,
    default_district,
    default_router,
    load_routing,
)
from cloud.grid.routing import DEFAULT_PATH

SEAT = "41010210100101"


def test_device_health_goes_to_maintenance() -> None:
    """device_health anywhere goes to the maintenance team named in the table."""
    router = default_router()
    for grid in default_district().grids[::20]:
        assert router.route("device_health", grid.code) == Assignee("department", "YW")


def test_sensor_categories_go_to_their_owner() -> None:
    """Sensor categories go to the department that owns them."""
    router = default_router()
    directory = default_directory()
    for category in ("gas_leak", "tunnel_gas", "water_pressure", "drainage_overflow", "manhole_cover", "air_quality"):
        owner = directory.owner(category)
        assert owner is not None
        assert router.route(category, SEAT) == Assignee("department", owner.code)


def test_grid_level_categories_go_to_the_grid_team() -> None:
    """garbage is a grid matter: the grid's own team gets it."""
    assert default_router().route("garbage", SEAT) == Assignee("grid_team", SEAT)
    assert default_router().route("garbage", "41010210200301") == Assignee("grid_team", "41010210200301")


def test_office_overrides_apply_only_inside_their_scope() -> None:
    """An office override changes the answer in that office's grids and nowhere else."""
    router = default_router()
    district = default_district()
    for grid in district.grids:
        got = router.route("garbage", grid.code)
        if district.contains("410102105", grid.code):
            assert got == Assignee("department", "CGJ")
        else:
            assert got == Assignee("grid_team", grid.code)
    assert router.route("illegal_parking", SEAT) == Assignee("department", "CGJ")
    assert router.route("illegal_parking", "41010210200101") == Assignee("department", "JTJ")


def table(**changes: object) -> RoutingTable:
    """Return the sample table with some fields replaced."""
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    doc.update(changes)
    return RoutingTable.model_validate(doc)


def test_most_specific_override_wins() -> None:
    """A grid-level override beats an area one, which beats an office one, whatever the listed order."""
    overrides = [
        {"scope": "410102101", "category": "noise", "department": "CGJ"},
        {"scope": SEAT, "category": "noise", "department": "SWJ"},
        {"scope": "410102101001", "category": "noise", "grid_team": True},
    ]
    router = Router(default_district(), default_directory(), table(overrides=overrides))
    assert router.route("noise", SEAT) == Assignee("department", "SWJ")
    assert router.route("noise", "41010210100102") == Assignee("grid_team", "41010210100102")
    assert router.route("noise", "41010210100201") == Assignee("department", "CGJ")
    assert router.route("noise", "41010210200101") == Assignee("department", "STHJ")


def test_router_accepts_a_plain_department_list() -> None:
    """The router takes departments as a Directory or any iterable of Department."""
    router = Router(default_district(), default_directory().departments, load_routing())
    assert router.route("road_damage", SEAT) == Assignee("department", "JTJ")


def test_unanswerable_questions_raise() -> None:
    """An unknown category or a code that is not a grid raises RoutingError."""
    router = default_router()
    with pytest.raises(RoutingError, match="no department owns category 'ufo'"):
        router.route("ufo", SEAT)
    with pytest.raises(RoutingError, match="not a grid"):
        router.route("garbage", "410102101")
    with pytest.raises(RoutingError, match="not a grid"):
        router.route("garbage", "41010299999999")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"maintenance": "NOPE"}, r"maintenance: unknown department 'NOPE'"),
        ({"grid_team_categories": ["garbage", "ufo"]}, r"grid_team_categories\.1: no department owns 'ufo'"),
        ({"overrides": [{"scope": "410102999", "category": "noise", "grid_team": True}]}, r"overrides\.0\.scope"),
        ({"overrides": [{"scope": "410102101", "category": "ufo", "grid_team": True}]}, r"overrides\.0\.category"),
        ({"overrides": [{"scope": "410102101", "category": "noise", "department": "X"}]}, r"overrides\.0\.department"),
    ],
)
def test_router_checks_cross_references(changes: dict[str, object], message: str) -> None:
    """A table naming unknown departments, categories or scopes is refused, naming the key path."""
    with pytest.raises(RoutingError, match=message):
        Router(default_district(), default_directory(), table(**changes))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("maintenance: YW\nextra: 1\n", r"extra: Extra inputs"),
        ("grid_team_categories: []\n", r"maintenance: Field required"),
        (
            "maintenance: YW\noverrides: [{scope: '410102101', category: noise}]\n",
            r"overrides\.0: Value error, an override needs exactly one",
        ),
        (
            "maintenance: YW\noverrides: [{scope: '410102101', category: noise, department: CGJ, grid_team: true}]\n",
            r"overrides\.0: Value error",
        ),
    ],
)
def test_routing_yaml_is_validated(tmp_path: Path, text: str, message: str) -> None:
    """A malformed routing YAML is refused with the file and the key path in the message."""
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RoutingError, match=message):
        load_routing(path)
