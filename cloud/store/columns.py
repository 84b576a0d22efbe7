"""Readings as columns: wire rows or Readings in, numpy arrays plus small lookup tables out.

Ingest decodes envelopes in other processes and hands the writer columns, which pickle in a copy and feed
SQLite without a Python object per reading field. Per reading: an index into `keys` (device, quantity,
unit), the stamp, the value and an index into `marks` (quality, reason; None when every reading is good,
the common case). Tables hold each distinct entry once per envelope, so they stay tiny.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.contract import RowColumns
from gateway.readings import Reading

# The stamps a signed 64-bit column holds; the contract bounds ts_ms below only.
MAX_TS: Final = 2**63 - 1
GOOD: Final = ("good", None)

Key = tuple[str, str, str]  # device, quantity, unit
Mark = tuple[str, str | None]  # quality and reason, as wire strings

_GETTERS: Final = tuple(operator.itemgetter(i) for i in range(7))
_EMPTY_INT: Final = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class ReadingColumns:
    """Readings as parallel arrays; `too_new` counts readings left out for stamps beyond MAX_TS."""

    keys: list[Key]
    key: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    marks: list[Mark]
    mark: npt.NDArray[np.int32] | None  # None: every reading is good
    too_new: int = 0

    def __len__(self) -> int:
        return len(self.ts)

    def __eq__(self, other: object) -> bool:
        # Arrays compare element-wise, so the generated __eq__ would not give one truth value.
        if not isinstance(other, ReadingColumns):
            return NotImplemented
        return self.rows() == other.rows() and self.too_new == other.too_new

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    @property
    def all_good(self) -> bool:
        """True when every reading is of good quality with no reason."""
        return self.mark is None

    def rows(self) -> list[list[Any]]:
        """Return the readings as wire rows `[device, quantity, value, unit, ts_ms, quality, reason]`."""
        keys, marks = self.keys, self.marks
        mark = self.mark.tolist() if self.mark is not None else [0] * len(self)
        table = marks if self.mark is not None else [GOOD]
        return [
            [*keys[k][:2], v, keys[k][2], ts, *table[m]]
            for k, ts, v, m in zip(self.key.tolist(), self.ts.tolist(), self.value.tolist(), mark, strict=True)
        ]

    def newest_per_device(self) -> dict[str, int]:
        """Return each device's newest stamp."""
        if not len(self):
            return {}
        newest = np.full(len(self.keys), -1, dtype=np.int64)
        np.maximum.at(newest, self.key, self.ts)
        seen: dict[str, int] = {}
        for (device, _, _), ts in zip(self.keys, newest.tolist(), strict=True):
            if ts > seen.get(device, -1):
                seen[device] = ts
        return seen


def columns_of_rows(rows: Sequence[Sequence[Any]]) -> ReadingColumns:
    """Return validated wire rows (or Readings, by position of their fields) as columns."""
    rows = [_wire(r) if type(r) is Reading else r for r in rows]
    # Column lists via itemgetter, not zip(*rows): zip allocates an iterator per row.
    return columns_of_lists(tuple(list(map(get, rows)) for get in _GETTERS))  # type: ignore[arg-type]


def columns_of_lists(columns: RowColumns) -> ReadingColumns:
    """Return seven validated column lists (gateway.contract.decode_envelope_columns) as ReadingColumns."""
    devices, quantities, values, units, stamps, qualities, reasons = columns
    try:
        ts = np.array(stamps, dtype=np.int64)
    except OverflowError:  # a stamp beyond 64 bits: left out and counted, never the whole batch refused
        keep = [i for i, stamp in enumerate(stamps) if stamp <= MAX_TS]
        kept: RowColumns = tuple([column[i] for i in keep] for column in columns)  # type: ignore[assignment]
        return _with_too_new(columns_of_lists(kept), len(stamps) - len(keep))
    except ValueError as exc:  # a stamp that is no number at all: a caller's bug, refused before any write
        raise TypeError(f"reading stamps must be integers: {exc}") from exc
    keys: dict[Key, int] = {}
    key = [keys.setdefault(k, len(keys)) for k in zip(devices, quantities, units, strict=True)]
    n = len(stamps)
    # list.count compares in C (str equality also matches a StrEnum); only a mixed batch builds mark indexes.
    mark: npt.NDArray[np.int32] | None = None
    marks: list[Mark] = [GOOD]
    if qualities.count("good") != n or reasons.count(None) != n:
        table: dict[Mark, int] = {GOOD: 0}
        mark = np.array([table.setdefault(m, len(table)) for m in zip(qualities, reasons, strict=True)], dtype=np.int32)
        marks = [(str(q), None if r is None else str(r)) for q, r in table]
    return ReadingColumns(
        list(keys), np.array(key, dtype=np.int32), ts, np.array(values, dtype=np.float64), marks, mark
    )


def _wire(r: Reading) -> tuple[Any, ...]:
    return r.device, r.quantity, r.value, r.unit, r.ts_ms, r.quality.value, None if r.reason is None else r.reason.value


def _with_too_new(cols: ReadingColumns, too_new: int) -> ReadingColumns:
    return ReadingColumns(cols.keys, cols.key, cols.ts, cols.value, cols.marks, cols.mark, cols.too_new + too_new)


def concat(parts: Sequence[ReadingColumns]) -> ReadingColumns:
    """Return the parts as one set of columns (tables appended, indexes shifted)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        empty = np.empty(0, dtype=np.int32)
        return ReadingColumns([], empty, _EMPTY_INT, np.empty(0, dtype=np.float64), [GOOD], None)
    keys: list[Key] = []
    key_parts = []
    for part in parts:
        key_parts.append(part.key + len(keys))
        keys.extend(part.keys)
    mark: npt.NDArray[np.int32] | None = None
    marks: list[Mark] = [GOOD]
    if any(p.mark is not None for p in parts):
        mark_parts = []
        marks = []
        for part in parts:
            local = part.mark if part.mark is not None else np.zeros(len(part), dtype=np.int32)
            mark_parts.append(local + len(marks))
            marks.extend(part.marks)
        mark = np.concatenate(mark_parts)
    return ReadingColumns(
        keys,
        np.concatenate(key_parts),
        np.concatenate([p.ts for p in parts]),
        np.concatenate([p.value for p in parts]),
        marks,
        mark,
        sum(p.too_new for p in parts),
    )
