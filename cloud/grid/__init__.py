"""The district's reference data: territory tree, point → grid, departments, parts, grid teams and routing."""

from cloud.grid.directory import (
    Department,
    Directory,
    GridTeam,
    Part,
    PartId,
    default_directory,
    grid_team,
    grid_teams,
    load_directory,
    parse_part_id,
)
from cloud.grid.errors import DirectoryError, DistrictError, GridError, PartIdError, RoutingError, UnknownTerritory
from cloud.grid.generate import default_district, generate_district
from cloud.grid.index import GridIndex
from cloud.grid.routing import Assignee, Router, RoutingTable, default_router, load_routing
from cloud.grid.territory import District, Level, Territory, load_district

__all__ = [
    "Assignee",
    "Department",
    "Directory",
    "DirectoryError",
    "District",
    "DistrictError",
    "GridError",
    "GridIndex",
    "GridTeam",
    "Level",
    "Part",
    "PartId",
    "PartIdError",
    "Router",
    "RoutingError",
    "RoutingTable",
    "Territory",
    "UnknownTerritory",
    "default_directory",
    "default_district",
    "default_router",
    "generate_district",
    "grid_team",
    "grid_teams",
    "load_directory",
    "load_district",
    "load_routing",
    "parse_part_id",
]
