"""An in-memory SeriesStore: Readings in, Points out, nothing kept on disk (tests, demos, reference)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from cloud.store import Point, bucket_edges
from gateway.readings import Quality, Reading


class MemorySeriesStore:
    """SeriesStore in a dict; computes every query from the raw readings."""

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self._series: dict[tuple[str, str], dict[int, Reading]] = {}

    def write(self, readings: Sequence[Reading]) -> int:
        """Keep the first reading per (device, quantity, ts_ms); return how many were new."""
        new = 0
        for r in readings:
            if not math.isfinite(r.value):
                self.stats["not_finite"] += 1
                continue
            points = self._series.setdefault((r.device, r.quantity), {})
            if r.ts_ms not in points:
                points[r.ts_ms] = r
                new += 1
        self.stats["written"] += new
        return new

    def readings(self, device: str, quantity: str, start_ms: int, end_ms: int) -> list[Reading]:
        """Return every reading of one series in [start_ms, end_ms), by time."""
        points = self._series.get((device, quantity), {})
        return [points[ts] for ts in sorted(points) if start_ms <= ts < end_ms]

    def query(self, device: str, quantity: str, start_ms: int, end_ms: int, step_ms: int | None = None) -> list[Point]:
        """Return good readings in [start_ms, end_ms), raw or per whole step bucket."""
        if step_ms is not None:
            start_ms, end_ms = bucket_edges(start_ms, end_ms, step_ms)
        good = [r for r in self.readings(device, quantity, start_ms, end_ms) if r.quality is Quality.GOOD]
        if step_ms is None:
            return [Point(r.ts_ms, r.value, r.value, r.value, 1) for r in good]
        buckets: dict[int, list[float]] = {}
        for r in good:
            buckets.setdefault(r.ts_ms - r.ts_ms % step_ms, []).append(r.value)
        return [Point(b, sum(vs) / len(vs), min(vs), max(vs), len(vs)) for b, vs in buckets.items()]

    def close(self) -> None:
        """Drop everything."""
        self._series.clear()
