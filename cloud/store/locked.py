"""A series store shared by ingest threads and API queries: every call holds one lock."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cloud.store import Point, SeriesStore
from cloud.store.columns import ReadingColumns
from gateway.readings import Reading


class LockedStore:
    """Serializes calls to a store that must be used by one thread at a time (SQLite's single connection)."""

    def __init__(self, store: SeriesStore) -> None:
        self.inner = store
        self._lock = threading.Lock()

    @property
    def takes_columns(self) -> bool:
        """Whether the wrapped store writes ReadingColumns as well as Readings (ingest's fast path)."""
        return getattr(self.inner, "takes_columns", False) is True

    def write(self, readings: Sequence[Reading]) -> int:
        """Write under the lock."""
        with self._lock:
            return self.inner.write(readings)

    def write_columns(self, cols: ReadingColumns) -> int:
        """Write columns under the lock (only when `takes_columns`)."""
        with self._lock:
            written: int = self.inner.write_columns(cols)  # type: ignore[attr-defined]
            return written

    def query(self, device: str, quantity: str, start_ms: int, end_ms: int, step_ms: int | None = None) -> list[Point]:
        """Query under the lock."""
        with self._lock:
            return self.inner.query(device, quantity, start_ms, end_ms, step_ms)

    def readings(self, device: str, quantity: str, start_ms: int, end_ms: int) -> list[Reading]:
        """Read raw readings under the lock."""
        with self._lock:
            return self.inner.readings(device, quantity, start_ms, end_ms)

    def prune(self, now_ms: int) -> dict[str, int]:
        """Apply retention under the lock, where the store has any."""
        prune = getattr(self.inner, "prune", None)
        if prune is None:
            return {}
        with self._lock:
            result: dict[str, int] = prune(now_ms)
            return result

    def close(self) -> None:
        """Close the store under the lock."""
        with self._lock:
            self.inner.close()
