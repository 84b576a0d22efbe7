"""The decoder seam: a Sample type, the DecodeError tree root and the stream Decoder protocol."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class DecodeError(Exception):
    """A frame or value could not be decoded; `reason` is a stable, countable outcome name."""

    reason: str = "decode_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class Sample(NamedTuple):
    """One decoded value before normalization, keyed by the profile's source name.

    `ts_ms` is the device's own event time (UTC ms) when the wire carries one, else None and the
    runner stamps arrival time. `flag` is an instrument data flag (HJ 212 `N`, `D`, ...) when the wire
    carries one. `stale` marks a value the device repeated without a new measurement. A NamedTuple:
    decoders make millions of these, and a tuple is built three times faster than a frozen dataclass.
    """

    key: str
    value: float
    ts_ms: int | None = None
    flag: str | None = None
    stale: bool = False
    clock_suspect: bool = False


@dataclass(slots=True)
class DecodeStats:
    """Counters of decode outcomes by name (frames, checksum, unknown_sentence, ...)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str, n: int = 1) -> None:
        """Count `n` occurrences of `outcome`."""
        self.counts[outcome] += n


class Decoder(Protocol):
    """A stream decoder: feed it bytes as they arrive, get the samples they complete.

    Never raises on bad input: bad frames are counted in `stats` and skipped. Never reads the clock:
    `now_ms` is the arrival time, used only for context (e.g. the date of a time-only NMEA epoch).
    """

    stats: DecodeStats

    def feed(self, data: bytes, now_ms: int) -> list[Sample]:
        """Consume `data`, return every sample that it completes."""
        ...
