"""Geofence rules: paired GNSS latitude/longitude readings in, alerts after a dwell outside a polygon out."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from device_profiles.schema import GeofenceRule
from edge_agent.rules.emit import Emitter
from edge_agent.rules.levels import LevelMachine
from edge_agent.rules.threshold import ms
from gateway.alerts import AlertEvent, Location

if TYPE_CHECKING:
    import shapely

# Up to this many vertices a plain ray cast beats shapely: one point per call leaves shapely's
# per-call overhead (~6 µs) unamortised, while the ray cast costs ~0.2 µs per edge.
RAY_CAST_MAX_VERTICES: Final = 32


class Fence:
    """A polygon of (lon, lat) vertices that answers whether a point lies inside it."""

    __slots__ = ("_edges", "_prepared", "bbox")

    def __init__(self, vertices: Sequence[tuple[float, float]]) -> None:
        xs = [v[0] for v in vertices]
        ys = [v[1] for v in vertices]
        self.bbox: Final = (min(xs), min(ys), max(xs), max(ys))
        # Each edge as (x1, y1, x2, y2), closing edge included; horizontal edges never cross a ray.
        n = len(vertices)
        self._edges: Final = tuple(
            (*vertices[i - 1], *vertices[i]) for i in range(n) if vertices[i - 1][1] != vertices[i][1]
        )
        self._prepared: shapely.Polygon | None = None
        if n > RAY_CAST_MAX_VERTICES:
            # shapely and numpy (~20 MB of imports) are loaded only for a polygon this large.
            import shapely

            self._prepared = shapely.Polygon(vertices)
            shapely.prepare(self._prepared)

    def contains(self, lon: float, lat: float) -> bool:
        """Return whether (lon, lat) lies inside the polygon."""
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        if self._prepared is not None:
            import shapely  # already loaded by __init__: a dict lookup

            return bool(shapely.contains_xy(self._prepared, lon, lat))
        inside = False
        for ax, ay, bx, by in self._edges:
            if (ay > lat) != (by > lat) and lon < (bx - ax) * (lat - ay) / (by - ay) + ax:
                inside = not inside
        return inside


class GeofenceEval:
    """One geofence rule on one device; events carry the observed position in their location."""

    __slots__ = ("_fence", "_fire_inside", "emit", "machine")

    def __init__(self, rule: GeofenceRule, emit: Emitter) -> None:
        self._fence = Fence(rule.polygon)
        self._fire_inside = rule.fire_when == "inside"
        self.machine = LevelMachine([(rule.severity, 0.5, True)], ms(rule.dwell), 0)
        self.emit = emit

    def observe_point(self, ts: int, lat: float, lon: float, out: list[AlertEvent]) -> None:
        """Judge one GNSS position at event time `ts`."""
        breach = self._fence.contains(lon, lat) is self._fire_inside
        t = self.machine.step(ts, 1.0 if breach else 0.0)
        if t is not None:
            where = dataclasses.replace(self.emit.location or Location(), lat=lat, lon=lon)
            out.append(self.emit.event(t[0], t[1], ts, None, None, where))

    def go_stale(self, ts: int, out: list[AlertEvent]) -> None:
        """The position data went stale at `ts`."""
        t = self.machine.go_stale(ts)
        if t is not None:
            out.append(self.emit.event(t[0], t[1], ts, None, None))

    def dump(self) -> dict[str, Any]:
        """Return the rule's state as JSON-ready data."""
        return self.machine.dump()

    def load(self, state: dict[str, Any]) -> None:
        """Restore the state written by `dump`."""
        self.machine.load(state)
