"""Threshold rules on event time: levels, `for`, `clear_for`, escalation and de-escalation."""

from __future__ import annotations

from device_profiles.schema import ThresholdRule
from edge_agent.rules import RuleEngine
from gateway.alerts import AlertEvent, AlertState, Location
from gateway.readings import Reading

S = 1000  # one second of event time in ms
T0 = 1_700_000_000_000

GAS = ThresholdRule.model_validate(
    {
        "kind": "threshold",
        "name": "gas_high",
        "quantity": "gas_lel",
        "levels": [{"severity": 1, "above": 25}, {"severity": 2, "above": 50}],
        "clear_for": "5s",
    }
)
PRESSURE = ThresholdRule.model_validate(
    {
        "kind": "threshold",
        "name": "pressure_low",
        "quantity": "pressure",
        "levels": [{"severity": 2, "below": 0.14}],
    }
)
TILT = ThresholdRule.model_validate(
    {
        "kind": "threshold",
        "name": "tilt",
        "quantity": "tilt",
        "levels": [{"severity": 3, "above": 10}],
        "for": "3s",
    }
)
UNIT = {"gas_lel": "%LEL", "pressure": "MPa", "tilt": "deg"}


def feed(engine: RuleEngine, quantity: str, points: list[tuple[int, float]]) -> list[AlertEvent]:
    """Feed (seconds after T0, value) readings of one quantity of device d1; return all events."""
    out: list[AlertEvent] = []
    for sec, value in points:
        out += engine.observe(Reading("d1", quantity, value, UNIT[quantity], T0 + sec * S))
    return out


def brief(events: list[AlertEvent]) -> list[tuple[AlertState, int, int]]:
    """Reduce events to (state, severity, seconds after T0)."""
    return [(e.state, e.severity, (e.ts_ms - T0) // S) for e in events]


def engine_with(*rules: ThresholdRule) -> RuleEngine:
    """Return an engine with device d1 carrying `rules`."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", rules, Location(lat=39.9, lon=116.4, part_id="0101", grid="g-7"))
    return engine


def test_gas_escalates_immediately_and_deescalates_after_clear_for() -> None:
    """Gas 25/50: escalation 1→2 is immediate, 2→1 and resolving each wait clear_for of event time."""
    engine = engine_with(GAS)
    events = feed(
        engine,
        "gas_lel",
        [
            (0, 10),
            (1, 30),
            (2, 60),
            (3, 40),
            (6, 45),
            (8, 45),
            (9, 60),
            (10, 30),
            (15, 20),
            (16, 10),
            (20, 10),
            (21, 5),
        ],
    )
    assert brief(events) == [
        (AlertState.FIRING, 1, 1),
        (AlertState.FIRING, 2, 2),
        (AlertState.FIRING, 1, 8),  # below 50 since 3 s, clear_for 5 s
        (AlertState.FIRING, 2, 9),
        (AlertState.FIRING, 1, 15),  # below 50 since 10 s, under 25 only since 15 s
        (AlertState.RESOLVED, 1, 20),  # below 25 since 15 s
    ]
    assert [e.threshold for e in events] == [25, 50, 25, 50, 25, 25]
    first = events[0]
    assert (first.value, first.quantity, first.fingerprint) == (30, "gas_lel", "gw1/d1/gas_high")
    assert first.location is not None
    assert first.location.grid == "g-7"


def test_gas_dip_inside_clear_for_keeps_firing() -> None:
    """A dip below the level shorter than clear_for neither de-escalates nor resolves."""
    engine = engine_with(GAS)
    events = feed(engine, "gas_lel", [(0, 60), (1, 10), (3, 10), (4, 60), (5, 10), (9, 10), (10, 10)])
    assert brief(events) == [(AlertState.FIRING, 2, 0), (AlertState.RESOLVED, 2, 10)]


def test_pressure_below_fires_and_resolves() -> None:
    """A `below` level fires under 0.14 MPa and, with clear_for 0, resolves at the first reading back."""
    engine = engine_with(PRESSURE)
    events = feed(engine, "pressure", [(0, 0.3), (1, 0.14), (2, 0.13), (3, 0.12), (4, 0.2)])
    assert brief(events) == [(AlertState.FIRING, 2, 2), (AlertState.RESOLVED, 2, 4)]
    assert (events[0].threshold, events[0].value) == (0.14, 0.13)


def test_tilt_fires_after_three_seconds_held() -> None:
    """Tilt over 10° pends at the first reading and fires at the first reading 3 s later, not before."""
    engine = engine_with(TILT)
    events = feed(engine, "tilt", [(0, 12), (1, 13), (2, 12.5)])
    assert brief(events) == [(AlertState.PENDING, 3, 0)]
    events = feed(engine, "tilt", [(3, 11)])
    assert brief(events) == [(AlertState.FIRING, 3, 3)]


def test_tilt_dip_resets_the_hold() -> None:
    """A reading back under 10° breaks the hold; the next rise pends again and needs a full 3 s."""
    engine = engine_with(TILT)
    events = feed(engine, "tilt", [(0, 12), (2, 12), (2, 9), (3, 12), (5, 12), (6, 12)])
    assert brief(events) == [
        (AlertState.PENDING, 3, 0),
        (AlertState.PENDING, 3, 3),
        (AlertState.FIRING, 3, 6),
    ]


def test_for_zero_fires_without_pending_and_value_at_limit_is_inside() -> None:
    """With no `for`, the first reading beyond the limit fires; a value exactly at the limit does not."""
    engine = engine_with(GAS)
    assert feed(engine, "gas_lel", [(0, 25)]) == []
    assert brief(feed(engine, "gas_lel", [(1, 25.5)])) == [(AlertState.FIRING, 1, 1)]


def test_held_level_escalates_from_pending_to_the_highest_held_level() -> None:
    """With a `for`, a jump over both levels fires the top level only once its own hold completes."""
    rule = GAS.model_copy(update={"for_": 2.0, "clear_for": 0.0})
    engine = engine_with(rule)
    events = feed(engine, "gas_lel", [(0, 30), (1, 60), (2, 60), (3, 60)])
    assert brief(events) == [(AlertState.PENDING, 1, 0), (AlertState.FIRING, 1, 2), (AlertState.FIRING, 2, 3)]


def test_deescalation_to_a_level_still_met_skips_resolving() -> None:
    """Falling from level 2 straight into level 1 after clear_for fires level 1, never RESOLVED."""
    engine = engine_with(GAS)
    events = feed(engine, "gas_lel", [(0, 60), (1, 10), (2, 30), (6, 30)])
    assert brief(events) == [(AlertState.FIRING, 2, 0), (AlertState.FIRING, 1, 6)]


def ticks(engine: RuleEngine, clock0: int, seconds: list[float]) -> list[AlertEvent]:
    """Tick the engine at `clock0` + each of `seconds` of clock time; return all events."""
    out: list[AlertEvent] = []
    for sec in seconds:
        out += engine.tick(clock0 + round(sec * S))
    return out


def test_a_cover_that_reports_once_fires_when_its_hold_has_passed_on_the_clock() -> None:
    """An on-change sensor's single tilted report fires 3 s later on the tick with its value, not at the next one."""
    engine = engine_with(TILT)
    assert brief(feed(engine, "tilt", [(0, 35)])) == [(AlertState.PENDING, 3, 0)]
    assert ticks(engine, T0, [0.2, 1.2, 2.2]) == []  # the clock starts at the first tick after the report
    (fired,) = ticks(engine, T0, [3.2])
    assert brief([fired]) == [(AlertState.FIRING, 3, 3)]
    assert (fired.value, fired.threshold) == (35, 10)
    assert ticks(engine, T0, [4.2, 60]) == []  # fired once
    # The next report, an hour later and still tilted, changes nothing.
    assert feed(engine, "tilt", [(3600, 34)]) == []


def test_a_bump_shorter_than_the_hold_never_fires_on_the_clock() -> None:
    """A wheel rocking the cover for 1 s (tilted, then level again) fires neither at the reading nor on ticks."""
    engine = engine_with(TILT)
    events = feed(engine, "tilt", [(0, 25), (1, 2)])
    events += ticks(engine, T0, [1.5, 3, 5, 60])
    assert brief(events) == [(AlertState.PENDING, 3, 0)]


def test_a_device_clock_minutes_off_neither_fires_nor_clears_early() -> None:
    """Only elapsed clock time since the report counts: a device 60 s behind still needs 3 s of holding."""
    engine = engine_with(TILT)
    clock = T0 + 60 * S  # the device's clock is a minute behind the gateway's
    feed(engine, "tilt", [(0, 35)])
    assert ticks(engine, clock, [0.5, 2.5]) == []
    assert brief(ticks(engine, clock, [3.5])) == [(AlertState.FIRING, 3, 3)]


def test_clear_for_completes_on_the_clock_after_a_single_report_back_under_the_limit() -> None:
    """Gas that reports once back under 25 %LEL resolves clear_for (5 s) later on the tick, and not before."""
    engine = engine_with(GAS)
    assert brief(feed(engine, "gas_lel", [(0, 30), (1, 10)])) == [(AlertState.FIRING, 1, 0)]
    assert ticks(engine, T0, [1.1, 3, 5.5]) == []
    resolved = ticks(engine, T0, [6.2])
    assert brief(resolved) == [(AlertState.RESOLVED, 1, 6)]
    assert resolved[0].value == 10
    # A reading older than the resolution is late now: it cannot reopen what was judged.
    assert feed(engine, "gas_lel", [(5, 40)]) == []
    assert engine.counters()["out_of_order"] == 1
