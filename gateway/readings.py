"""The Reading contract: one canonical measurement with its unit, event time and quality."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple


class Quality(StrEnum):
    """How far a reading can be trusted."""

    GOOD = "good"
    SUSPECT = "suspect"
    BAD = "bad"


class Reason(StrEnum):
    """Why a reading is not good."""

    OUT_OF_RANGE = "out_of_range"
    INSTRUMENT_FLAG = "instrument_flag"
    STALE = "stale"
    CHECKSUM = "checksum"
    CLOCK = "clock"
    NO_FIX = "no_fix"


# The closed set of units a reading may carry; device profiles may use no other.
UNITS: Final[frozenset[str]] = frozenset(
    {
        "deg",
        "m",
        "m/s",
        "1",
        "count",
        "ug/m3",
        "mg/m3",
        "dB(A)",
        "degC",
        "%RH",
        "mg/L",
        "pH",
        "MPa",
        "kPa",
        "m3/h",
        "m3",
        "%LEL",
        "%",
        "V",
        "hPa",
        "m/s2",
    }
)


class Reading(NamedTuple):
    """One canonical measurement of one device at one event time (UTC milliseconds).

    A NamedTuple rather than a frozen dataclass: readings are the most numerous objects of the system,
    and a tuple is built three times faster while staying immutable.
    """

    device: str
    quantity: str
    value: float
    unit: str
    ts_ms: int
    quality: Quality = Quality.GOOD
    reason: Reason | None = None
