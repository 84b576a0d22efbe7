"""Point → grid: a District in, `locate(lat, lon)` → grid code (or None outside) out, via shapely's STRtree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import shapely
from shapely import STRtree

from cloud.grid.territory import District

BUCKETS: Final = 128  # per side of the lookup lattice in front of the tree
SLOW: Final = -1


class GridIndex:
    """Find the grid that holds a point; on a shared edge or corner the smallest grid code wins.

    A lattice of buckets sits in front of the STRtree: a bucket that lies wholly in one grid and touches no
    other answers at once; the rest (buckets on a grid edge) ask the tree.
    """

    def __init__(self, district: District, buckets: int = BUCKETS) -> None:
        # Grids are ordered by code, so the smallest index among hits is the smallest code.
        self.codes: tuple[str, ...] = tuple(sorted(g.code for g in district.grids))
        polygons = np.array([district.territory(code).polygon for code in self.codes], dtype=object)
        shapely.prepare(polygons)
        self._tree = STRtree(polygons)
        x0, y0, x1, y1 = shapely.total_bounds(polygons)
        self._x0, self._y0, self._n = float(x0), float(y0), buckets
        self._dx, self._dy = (float(x1) - x0) / buckets, (float(y1) - y0) / buckets
        ix, iy = np.meshgrid(np.arange(buckets), np.arange(buckets), indexing="ij")
        boxes = shapely.box(x0 + ix * self._dx, y0 + iy * self._dy, x0 + (ix + 1) * self._dx, y0 + (iy + 1) * self._dy)
        boxes = boxes.ravel()
        box_idx, grid_idx = self._tree.query(boxes, predicate="intersects")
        hits = np.bincount(box_idx, minlength=boxes.size)
        owner = np.full(boxes.size, SLOW, dtype=np.int64)
        owner[box_idx] = grid_idx  # meaningful only where a bucket has exactly one hit
        single = hits == 1
        covered = np.zeros(boxes.size, dtype=bool)
        covered[single] = shapely.covers(polygons[owner[single]], boxes[single])
        self._bucket: list[int] = np.where(covered, owner, SLOW).tolist()

    def locate(self, lat: float, lon: float) -> str | None:
        """Return the code of the grid at (lat, lon), or None outside the district."""
        i = int((lon - self._x0) // self._dx)
        j = int((lat - self._y0) // self._dy)
        if 0 <= i < self._n and 0 <= j < self._n:
            owner = self._bucket[i * self._n + j]
            if owner != SLOW:
                return self.codes[owner]
        hits = self._tree.query(shapely.Point(lon, lat), predicate="intersects")
        return self.codes[int(hits.min())] if hits.size else None

    def locate_many(self, lats: Sequence[float], lons: Sequence[float]) -> list[str | None]:
        """Return the grid code of each point (None outside), in one vectorised tree query."""
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        point_idx, grid_idx = self._tree.query(points, predicate="intersects")
        best = np.full(len(points), len(self.codes), dtype=np.int64)
        np.minimum.at(best, point_idx, grid_idx)
        return [self.codes[g] if g < len(self.codes) else None for g in best.tolist()]
