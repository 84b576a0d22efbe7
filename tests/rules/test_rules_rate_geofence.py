"""Rate-of-change and geofence rules on event time."""

from __future__ import annotations

from device_profiles.schema import GeofenceRule, RateRule
from edge_agent.rules import RuleEngine
from edge_agent.rules.geofence import RAY_CAST_MAX_VERTICES, Fence
from gateway.alerts import AlertEvent, AlertState, Location
from gateway.readings import Reading

S = 1000
T0 = 1_700_000_000_000

RISE = RateRule.model_validate(
    {
        "kind": "rate",
        "name": "level_surge",
        "quantity": "water_level",
        "max_change": 0.5,
        "window": "10s",
        "direction": "rise",
        "severity": 2,
    }
)
# A square around (116.40, 39.90), vertices as [lon, lat].
SQUARE = ((116.39, 39.89), (116.41, 39.89), (116.41, 39.91), (116.39, 39.91))
FENCE = GeofenceRule.model_validate(
    {"kind": "geofence", "name": "left_zone", "polygon": SQUARE, "dwell": "5s", "severity": 3}
)


def levels(engine: RuleEngine, points: list[tuple[int, float]]) -> list[AlertEvent]:
    """Feed water levels of device d1 at (seconds after T0, value); return all events."""
    out: list[AlertEvent] = []
    for sec, value in points:
        out += engine.observe(Reading("d1", "water_level", value, "m", T0 + sec * S))
    return out


def positions(engine: RuleEngine, points: list[tuple[int, float, float]]) -> list[AlertEvent]:
    """Feed (seconds, lat, lon) fixes of device d1 as separate latitude and longitude readings."""
    out: list[AlertEvent] = []
    for sec, lat, lon in points:
        out += engine.observe(Reading("d1", "latitude", lat, "deg", T0 + sec * S))
        out += engine.observe(Reading("d1", "longitude", lon, "deg", T0 + sec * S))
    return out


def brief(events: list[AlertEvent]) -> list[tuple[AlertState, int, int]]:
    """Reduce events to (state, severity, seconds after T0)."""
    return [(e.state, e.severity, (e.ts_ms - T0) // S) for e in events]


def test_rate_rise_within_window_fires_and_resolves_when_the_window_slides() -> None:
    """A 0.6 m rise inside 10 s fires; once the low point leaves the window, the rise left is 0.4 m."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [RISE])
    events = levels(engine, [(0, 1.0), (5, 1.3), (8, 1.6), (12, 1.7), (16, 1.8), (19, 1.8)])
    assert brief(events) == [(AlertState.FIRING, 2, 8), (AlertState.RESOLVED, 2, 12)]
    assert events[0].value is not None
    assert abs(events[0].value - 0.6) < 1e-9
    assert events[0].threshold == 0.5


def test_rate_direction_rise_ignores_falls_and_fall_reports_negative_change() -> None:
    """A rise rule ignores a fall; a fall rule fires on it with a negative change."""
    fall = RISE.model_copy(update={"name": "level_drop", "direction": "fall"})
    engine = RuleEngine("gw1")
    engine.add_device("d1", [RISE, fall])
    events = levels(engine, [(0, 2.0), (3, 1.2)])
    assert [(e.rule, e.state) for e in events] == [("level_drop", AlertState.FIRING)]
    assert events[0].value is not None
    assert abs(events[0].value + 0.8) < 1e-9


def test_rate_slow_drift_never_fires() -> None:
    """A rise slower than max_change per window never fires, however far it goes."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [RISE])
    assert levels(engine, [(sec, 1.0 + sec * 0.04) for sec in range(0, 120, 2)]) == []


def test_geofence_fires_after_dwell_outside_and_resolves_back_inside() -> None:
    """Outside the polygon pends, fires after 5 s of event time, and resolves at the first fix inside."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [FENCE], Location(part_id="truck-7", grid="g-3"))
    events = positions(
        engine,
        [(0, 39.90, 116.40), (1, 39.95, 116.40), (4, 39.95, 116.40), (6, 39.95, 116.41), (8, 39.90, 116.40)],
    )
    assert brief(events) == [
        (AlertState.PENDING, 3, 1),
        (AlertState.FIRING, 3, 6),
        (AlertState.RESOLVED, 3, 8),
    ]
    fired = events[1].location
    assert fired == Location(lat=39.95, lon=116.41, part_id="truck-7", grid="g-3")


def test_geofence_short_excursion_does_not_fire() -> None:
    """Leaving the polygon for less than the dwell and coming back fires nothing."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [FENCE])
    events = positions(engine, [(0, 39.95, 116.40), (3, 39.90, 116.40), (7, 39.95, 116.40), (11, 39.95, 116.40)])
    assert brief(events) == [(AlertState.PENDING, 3, 0), (AlertState.PENDING, 3, 7)]


def test_geofence_pairs_halves_by_event_time_and_counts_unpaired() -> None:
    """A latitude without a longitude of the same event time is never judged, and is counted."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [FENCE.model_copy(update={"dwell": 0.0})])
    assert engine.observe(Reading("d1", "latitude", 39.95, "deg", T0)) == []
    assert engine.observe(Reading("d1", "longitude", 116.40, "deg", T0 + S)) == []
    assert engine.observe(Reading("d1", "latitude", 39.95, "deg", T0 + 2 * S)) == []
    events = engine.observe(Reading("d1", "longitude", 116.40, "deg", T0 + 2 * S))
    assert brief(events) == [(AlertState.FIRING, 3, 2)]
    assert engine.counters()["unpaired_position"] == 2


def test_fence_inside_rule_and_both_point_in_polygon_paths_agree() -> None:
    """The ray cast and the shapely path give the same answers on a concave polygon."""
    # A U shape: the notch at lon 2..3 is outside.
    u_shape = [(0.0, 0.0), (5.0, 0.0), (5.0, 5.0), (3.0, 5.0), (3.0, 2.0), (2.0, 2.0), (2.0, 5.0), (0.0, 5.0)]
    dense = [u_shape[0]] + [(0.0 + 5.0 * i / 40, 0.0) for i in range(1, 40)] + u_shape[1:]
    assert len(dense) > RAY_CAST_MAX_VERTICES >= len(u_shape)
    small, large = Fence(u_shape), Fence(dense)
    probes = [(1.0, 1.0), (2.5, 3.0), (2.5, 1.0), (4.0, 4.0), (6.0, 1.0), (-1.0, 3.0), (1.0, 4.9)]
    expected = [True, False, True, True, False, False, True]
    assert [small.contains(x, y) for x, y in probes] == expected
    assert [large.contains(x, y) for x, y in probes] == expected


def test_geofence_fire_when_inside_fires_on_entering() -> None:
    """A `fire_when: inside` fence with no dwell fires at the first fix inside and resolves on leaving."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [FENCE.model_copy(update={"fire_when": "inside", "dwell": 0.0})])
    events = positions(engine, [(0, 39.95, 116.40), (1, 39.90, 116.40), (2, 39.95, 116.40)])
    assert brief(events) == [(AlertState.FIRING, 3, 1), (AlertState.RESOLVED, 3, 2)]
