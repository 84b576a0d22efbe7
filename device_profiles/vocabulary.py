"""The canonical vocabulary: every quantity a reading may carry, with its unit and physical limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class QuantitySpec:
    """A canonical quantity: its unit and the range outside which a value is physically impossible."""

    unit: str
    low: float | None = None
    high: float | None = None


_CONSTELLATIONS: Final = ("gps", "glonass", "galileo", "beidou", "qzss", "navic")

# Never rename these: stored series, rules and dashboards are keyed by them.
QUANTITIES: Final[dict[str, QuantitySpec]] = {
    "latitude": QuantitySpec("deg", -90.0, 90.0),
    "longitude": QuantitySpec("deg", -180.0, 180.0),
    "altitude": QuantitySpec("m", -1000.0, 20000.0),
    "speed": QuantitySpec("m/s", 0.0, 1000.0),
    "course": QuantitySpec("deg", 0.0, 360.0),
    "hdop": QuantitySpec("1", 0.0, 100.0),
    "pdop": QuantitySpec("1", 0.0, 100.0),
    "vdop": QuantitySpec("1", 0.0, 100.0),
    "fix_quality": QuantitySpec("1", 0.0, 9.0),
    "sats_used": QuantitySpec("count", 0.0, 255.0),
    **{f"sats_used_{c}": QuantitySpec("count", 0.0, 255.0) for c in _CONSTELLATIONS},
    **{f"sats_in_view_{c}": QuantitySpec("count", 0.0, 255.0) for c in _CONSTELLATIONS},
    "pm2_5": QuantitySpec("ug/m3", 0.0, None),
    "pm10": QuantitySpec("ug/m3", 0.0, None),
    "tsp": QuantitySpec("ug/m3", 0.0, None),
    "so2": QuantitySpec("ug/m3", 0.0, None),
    "no2": QuantitySpec("ug/m3", 0.0, None),
    "no": QuantitySpec("ug/m3", 0.0, None),
    "nox": QuantitySpec("ug/m3", 0.0, None),
    "o3": QuantitySpec("ug/m3", 0.0, None),
    "co": QuantitySpec("mg/m3", 0.0, None),
    "noise_la": QuantitySpec("dB(A)", 0.0, 200.0),
    "temperature": QuantitySpec("degC", -273.15, None),
    "humidity": QuantitySpec("%RH", 0.0, 100.0),
    "air_pressure": QuantitySpec("kPa", 0.0, None),
    "wind_speed": QuantitySpec("m/s", 0.0, None),
    "wind_direction": QuantitySpec("deg", 0.0, 360.0),
    "cod": QuantitySpec("mg/L", 0.0, None),
    "nh3_n": QuantitySpec("mg/L", 0.0, None),
    "ph": QuantitySpec("pH", 0.0, 14.0),
    "pressure": QuantitySpec("MPa", None, None),
    "water_level": QuantitySpec("m", None, None),
    "flow_rate": QuantitySpec("m3/h", None, None),
    "flow_total": QuantitySpec("m3", 0.0, None),
    "gas_lel": QuantitySpec("%LEL", 0.0, 100.0),
    "tilt": QuantitySpec("deg", 0.0, 180.0),
    "battery": QuantitySpec("%", 0.0, 100.0),
}

# HJ 212 period data carries min/max companions of a quantity; they share its unit and limits.
COMPANION_SUFFIXES: Final = ("_min", "_max")


def quantity_spec(name: str) -> QuantitySpec | None:
    """Return the spec of a canonical quantity or of its `_min`/`_max` companion, else None."""
    spec = QUANTITIES.get(name)
    if spec is not None:
        return spec
    for suffix in COMPANION_SUFFIXES:
        if name.endswith(suffix):
            return QUANTITIES.get(name.removesuffix(suffix))
    return None


# Device units a measure may convert from, as (canonical unit, factor): canonical = device × factor.
UNIT_CONVERSIONS: Final[dict[tuple[str, str], float]] = {
    ("mg/m3", "ug/m3"): 1000.0,
    ("ug/m3", "mg/m3"): 0.001,
    ("kPa", "MPa"): 0.001,
    ("bar", "MPa"): 0.1,
    ("MPa", "kPa"): 1000.0,
    ("hPa", "kPa"): 0.1,
    ("cm", "m"): 0.01,
    ("mm", "m"): 0.001,
    ("L/s", "m3/h"): 3.6,
    ("km/h", "m/s"): 1.0 / 3.6,
    ("knot", "m/s"): 1852.0 / 3600.0,
}
