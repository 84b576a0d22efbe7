"""Series storage: Readings in, downsampled Points (and raw Readings) out, behind one small protocol.

Semantics shared by every implementation:

- A series is (device, quantity); device ids are unique district-wide, so the gateway is not part of the
  key (a device re-bound to another gateway keeps its history).
- `write` is idempotent on (device, quantity, ts_ms): writing a reading again changes nothing, whatever
  order batches arrive in; the first value written for a key wins.
- Quality (good / suspect / bad, with its reason) is stored with every reading; aggregates (`query` with a
  step, and the SQLite rollups) count only good readings.
- `query` without a step returns the good raw readings in [start_ms, end_ms). With a step it returns one
  Point per non-empty bucket [b, b + step) where b is a multiple of step (UTC epoch aligned); the range is
  widened to whole buckets: floor(start_ms / step) * step <= b < end_ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.readings import Reading

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class StoreError(Exception):
    """The series store failed to write or read (the backend's error is the cause)."""


@dataclass(frozen=True, slots=True)
class Point:
    """Good readings of one series in one bucket: start time, mean, min, max and how many there were."""

    ts_ms: int
    mean: float
    min: float
    max: float
    count: int


class SeriesStore(Protocol):
    """Where readings are kept; called from one thread at a time, never in parallel."""

    def write(self, readings: Sequence[Reading]) -> int:
        """Store `readings` idempotently; return how many the backend accepted (see the implementation)."""
        ...

    def query(self, device: str, quantity: str, start_ms: int, end_ms: int, step_ms: int | None = None) -> list[Point]:
        """Return good readings of one series in [start_ms, end_ms), raw or aggregated per step bucket."""
        ...

    def readings(self, device: str, quantity: str, start_ms: int, end_ms: int) -> list[Reading]:
        """Return every stored reading of one series in [start_ms, end_ms), any quality, by time."""
        ...

    def close(self) -> None:
        """Flush and release the backend; called once."""
        ...


def bucket_edges(start_ms: int, end_ms: int, step_ms: int) -> tuple[int, int]:
    """Return [first bucket start, end) widened to whole step buckets."""
    if step_ms <= 0:
        raise ValueError(f"step_ms must be positive, got {step_ms}")
    first = start_ms - start_ms % step_ms
    last = end_ms - end_ms % step_ms
    return first, (last if last == end_ms else last + step_ms)


__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "Point", "SeriesStore", "StoreError", "bucket_edges"]
