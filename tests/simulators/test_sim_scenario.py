"""Tests of scripted value sources: deterministic f(t) ramps, episodes and the calm baseline."""

from __future__ import annotations

import pytest

from device_profiles import QUANTITIES
from simulators.errors import ScenarioError
from simulators.scenario import BASELINE, SCENARIOS, Episode, Ramp, scenario


def test_gas_leak_ramps_from_0_to_60_lel_over_its_duration() -> None:
    """gas-leak holds 0 %LEL until `begin`, rises linearly, and holds 60 %LEL after `begin + duration`."""
    leak = scenario("gas-leak", begin=10, duration=100)
    assert leak.value("gas_lel", 0.0) == 0.0
    assert leak.value("gas_lel", 10.0) == 0.0
    assert leak.value("gas_lel", 60.0) == pytest.approx(30.0)
    assert leak.value("gas_lel", 110.0) == 60.0
    assert leak.value("gas_lel", 1e6) == 60.0
    values = [leak.value("gas_lel", t / 2) for t in range(300)]
    assert values == sorted(values)


def test_pressure_drop_falls_from_0_35_to_0_08_mpa() -> None:
    """pressure-drop goes from 0.35 MPa to 0.08 MPa over its duration, never rising on the way."""
    drop = scenario("pressure-drop", begin=5, duration=50)
    assert drop.value("pressure", 5.0) == pytest.approx(0.35)
    assert drop.value("pressure", 55.0) == pytest.approx(0.08)
    values = [drop.value("pressure", float(t)) for t in range(5, 60)]
    assert values == sorted(values, reverse=True)


def test_tilt_event_rises_holds_and_returns() -> None:
    """The tilt scenario knocks the cover to 35 degrees and puts it back after the event."""
    tilt = scenario("tilt", begin=10, duration=30)
    assert tilt.value("tilt", 5.0) == pytest.approx(0.8)
    assert tilt.value("tilt", 20.0) == pytest.approx(35.0)
    assert tilt.value("tilt", 100.0) == pytest.approx(0.8)


def test_pm25_episode_peaks_then_clears_and_other_quantities_stay_calm() -> None:
    """pm25-episode peaks PM2.5 at 250 ug/m3 in its middle third; unscripted quantities keep the baseline."""
    episode = scenario("pm25-episode", begin=0, duration=90)
    assert episode.value("pm2_5", 45.0) == pytest.approx(250.0)
    assert episode.value("pm2_5", 200.0) == pytest.approx(35.0)
    assert episode.value("humidity", 45.0) == BASELINE["humidity"].value(45.0)


def test_values_are_pure_functions_of_time() -> None:
    """Asking twice for the same t gives the same value, whatever was asked in between."""
    normal = scenario("normal")
    first = [normal.value(q, 123.4) for q in BASELINE]
    _ = [normal.value(q, 999.0) for q in BASELINE]
    assert [normal.value(q, 123.4) for q in BASELINE] == first


def test_baseline_values_are_canonical_quantities_inside_their_physical_limits() -> None:
    """Every baseline quantity is in the vocabulary and stays within its limits over a day."""
    for name, source in BASELINE.items():
        spec = QUANTITIES[name]
        for t in range(0, 86400, 600):
            value = source.value(float(t))
            assert spec.low is None or value >= spec.low, name
            assert spec.high is None or value <= spec.high, name


def test_unknown_scenarios_and_quantities_are_refused() -> None:
    """An unknown scenario name, negative timing or an unknown quantity raises ScenarioError."""
    with pytest.raises(ScenarioError):
        scenario("earthquake")
    with pytest.raises(ScenarioError):
        scenario("gas-leak", begin=-1)
    with pytest.raises(ScenarioError):
        scenario("normal").value("radiation", 0.0)
    assert set(SCENARIOS) >= {"gas-leak", "pressure-drop", "tilt", "pm25-episode"}


def test_ramp_and_episode_edges() -> None:
    """A zero-length ramp jumps at once; an episode is continuous where its rise meets its decay."""
    assert Ramp(1.0, 2.0, 5.0, 0.0).value(5.1) == 2.0
    episode = Episode(0.0, 10.0, 0.0, 10.0, 5.0, 10.0)
    assert episode.value(15.0) == pytest.approx(10.0)
    assert episode.value(14.999) == pytest.approx(10.0)
    assert episode.value(20.0) == pytest.approx(5.0)
