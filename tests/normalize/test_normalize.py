"""Normalizer: samples become canonical readings with scaling, unit conversion and honest quality."""

from __future__ import annotations

import math

import pytest

from device_profiles.schema import Measure
from edge_agent.decode.base import Sample
from edge_agent.normalize import Calibration, Normalizer
from gateway.readings import Quality, Reason

NOW = 1_700_000_000_000


def normalizer(*measures: Measure, calibration: dict[str, Calibration] | None = None) -> Normalizer:
    """Return a normalizer for device `d1` over the given measures."""
    return Normalizer("d1", measures, calibration)


def test_scale_offset_unit_and_arrival_time() -> None:
    """A raw value is scaled, offset and stamped with arrival time when the device gives none."""
    n = normalizer(Measure(source="raw", quantity="water_level", unit="m", scale=0.001, offset=0.5))
    [reading] = n.normalize([Sample("raw", 1500.0)], NOW)
    assert reading.quantity == "water_level"
    assert reading.unit == "m"
    assert reading.value == pytest.approx(2.0)
    assert reading.ts_ms == NOW
    assert reading.quality is Quality.GOOD


def test_device_unit_is_converted() -> None:
    """A device reporting kPa yields MPa readings."""
    n = normalizer(Measure(source="p", quantity="pressure", unit="MPa", device_unit="kPa"))
    [reading] = n.normalize([Sample("p", 350.0, ts_ms=NOW - 5)], NOW)
    assert reading.value == pytest.approx(0.35)
    assert reading.ts_ms == NOW - 5


def test_negative_concentration_is_never_good() -> None:
    """A concentration below zero is out of physical range even without a profile range."""
    n = normalizer(Measure(source="a34004", quantity="pm2_5", unit="ug/m3"))
    [reading] = n.normalize([Sample("a34004", -3.0)], NOW)
    assert (reading.quality, reading.reason) == (Quality.BAD, Reason.OUT_OF_RANGE)
    assert n.stats.counts["out_of_range"] == 1


def test_profile_range_narrows_physical_range() -> None:
    """The measure's valid range applies on top of physical limits."""
    n = normalizer(Measure(source="g", quantity="gas_lel", unit="%LEL", valid_range=(0, 80)))
    good, bad = n.normalize([Sample("g", 79.0), Sample("g", 81.0)], NOW)
    assert good.quality is Quality.GOOD
    assert bad.reason is Reason.OUT_OF_RANGE


@pytest.mark.parametrize("flag", ["F", "M", "S", "D", "C", "T", "B"])
def test_only_flag_n_is_good(flag: str) -> None:
    """Every HJ 212 data flag but N marks the reading bad with an instrument-flag reason."""
    n = normalizer(Measure(source="a34004", quantity="pm2_5", unit="ug/m3"))
    good, flagged = n.normalize([Sample("a34004", 30.0, flag="N"), Sample("a34004", 30.0, flag=flag)], NOW)
    assert good.quality is Quality.GOOD
    assert (flagged.quality, flagged.reason) == (Quality.BAD, Reason.INSTRUMENT_FLAG)


def test_stale_and_clock_are_suspect() -> None:
    """Repeated and badly timed values are kept as suspect, with their reason."""
    n = normalizer(Measure(source="latitude", quantity="latitude", unit="deg"))
    stale, skewed = n.normalize(
        [Sample("latitude", 34.8, stale=True), Sample("latitude", 34.8, clock_suspect=True)], NOW
    )
    assert (stale.quality, stale.reason) == (Quality.SUSPECT, Reason.STALE)
    assert (skewed.quality, skewed.reason) == (Quality.SUSPECT, Reason.CLOCK)


def test_nan_and_infinity_are_counted_not_emitted() -> None:
    """Non-finite values cannot be carried as readings; they are counted instead."""
    n = normalizer(Measure(source="q", quantity="pressure", unit="MPa"))
    assert n.normalize([Sample("q", math.nan), Sample("q", math.inf), Sample("q", 0.3)], NOW) != []
    assert n.stats.counts["not_a_number"] == 2


def test_period_companions_map_to_min_max_quantities() -> None:
    """`<code>_min` and `<code>_max` samples become `<quantity>_min`/`_max` readings."""
    n = normalizer(Measure(source="a34004", quantity="pm2_5", unit="ug/m3"))
    readings = n.normalize([Sample("a34004", 40.0), Sample("a34004_min", 20.0), Sample("a34004_max", 90.0)], NOW)
    assert [(r.quantity, r.value) for r in readings] == [
        ("pm2_5", 40.0),
        ("pm2_5_min", 20.0),
        ("pm2_5_max", 90.0),
    ]


def test_calibration_applies_after_scaling() -> None:
    """A per-device calibration corrects the scaled value."""
    n = normalizer(
        Measure(source="t", quantity="temperature", unit="degC", scale=0.1),
        calibration={"temperature": Calibration(gain=1.0, offset=-0.5)},
    )
    [reading] = n.normalize([Sample("t", 215.0)], NOW)
    assert reading.value == pytest.approx(21.0)


def test_unmapped_keys_are_counted_not_emitted() -> None:
    """A key the profile does not map is counted and dropped."""
    n = normalizer(Measure(source="t", quantity="temperature", unit="degC"))
    assert n.normalize([Sample("a99999", 1.0)], NOW) == []
    assert n.stats.counts["unmapped"] == 1
