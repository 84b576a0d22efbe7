"""The error tree of the grid package.

GridError
├── DistrictError      a district GeoJSON that does not hold together (names the feature)
├── UnknownTerritory   a code that is not in the district (also a KeyError)
├── PartIdError        a malformed 16-digit part id (also a ValueError)
├── DirectoryError     a departments/parts file that does not validate (names the key path)
└── RoutingError       a routing table that does not validate, or a category nobody handles
"""

from __future__ import annotations


class GridError(Exception):
    """Base of every error raised by cloud.grid."""


class DistrictError(GridError):
    """A district definition is invalid; `code` names the offending territory when there is one."""

    code: str | None = None


class UnknownTerritory(GridError, KeyError):
    """A territory code is not in the district."""

    def __str__(self) -> str:
        # KeyError quotes its argument; keep the plain message.
        return str(self.args[0]) if self.args else ""


class PartIdError(GridError, ValueError):
    """A part id (部件标识码) is malformed."""


class DirectoryError(GridError):
    """The departments and parts directory is invalid."""


class RoutingError(GridError):
    """The routing table is invalid, or it cannot answer a question."""
