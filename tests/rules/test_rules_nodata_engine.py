"""No-data rules, STALE alerts, quality filtering and out-of-order readings in the rule engine."""

from __future__ import annotations

from device_profiles.schema import NoDataRule, ThresholdRule
from edge_agent.rules import RuleEngine
from gateway.alerts import AlertEvent, AlertState
from gateway.readings import Quality, Reading, Reason

S = 1000
T0 = 1_700_000_000_000

SILENT = NoDataRule.model_validate({"kind": "no_data", "name": "silent", "after": "60s", "severity": 2})
GAS_SILENT = NoDataRule.model_validate({"kind": "no_data", "name": "gas_silent", "after": "30s", "quantity": "gas_lel"})
GAS = ThresholdRule.model_validate(
    {
        "kind": "threshold",
        "name": "gas_high",
        "quantity": "gas_lel",
        "levels": [{"severity": 1, "above": 25}, {"severity": 2, "above": 50}],
    }
)


def gas(sec: int, value: float, quality: Quality = Quality.GOOD, device: str = "d1") -> Reading:
    """Return a gas reading at `sec` seconds after T0."""
    reason = None if quality is Quality.GOOD else Reason.STALE
    return Reading(device, "gas_lel", value, "%LEL", T0 + sec * S, quality, reason)


def brief(events: list[AlertEvent]) -> list[tuple[str, AlertState, int]]:
    """Reduce events to (rule, state, seconds after T0)."""
    return [(e.rule, e.state, (e.ts_ms - T0) // S) for e in events]


def test_no_data_fires_from_tick_at_last_seen_plus_after_and_resolves_on_data() -> None:
    """tick fires once when the device is silent for `after`, stamped at last event time + after."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [SILENT])
    assert engine.observe(gas(0, 5)) == []
    assert engine.tick(T0 + 59 * S) == []
    fired = engine.tick(T0 + 75 * S)
    assert brief(fired) == [("silent", AlertState.FIRING, 60)]
    assert fired[0].severity == 2
    assert engine.tick(T0 + 90 * S) == []
    assert brief(engine.observe(gas(91, 5))) == [("silent", AlertState.RESOLVED, 91)]


def test_no_data_for_a_device_never_heard_counts_from_the_first_tick() -> None:
    """A device that never reports fires `after` past the first tick that saw it registered."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [SILENT])
    assert engine.tick(T0) == []
    assert brief(engine.tick(T0 + 60 * S)) == [("silent", AlertState.FIRING, 60)]


def test_no_data_gap_in_replayed_data_fires_and_resolves_without_ticks() -> None:
    """A gap of at least `after` between event times yields FIRING at its end and RESOLVED at the reading."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [SILENT])
    engine.observe(gas(0, 5))
    assert engine.observe(gas(50, 5)) == []
    assert brief(engine.observe(gas(200, 5))) == [
        ("silent", AlertState.FIRING, 110),
        ("silent", AlertState.RESOLVED, 200),
    ]


def test_no_data_per_quantity_ignores_other_quantities() -> None:
    """A no-data rule on one quantity is not kept alive by another quantity of the device."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [GAS_SILENT])
    engine.observe(gas(0, 5))
    engine.observe(Reading("d1", "battery", 80, "%", T0 + 20 * S))
    assert brief(engine.tick(T0 + 40 * S)) == [("gas_silent", AlertState.FIRING, 30)]


def test_firing_alert_goes_stale_with_its_data_and_fires_again_when_data_returns() -> None:
    """A firing threshold becomes STALE when its device's no-data rule fires, then FIRING on fresh data."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [GAS, SILENT])
    assert brief(engine.observe(gas(0, 60))) == [("gas_high", AlertState.FIRING, 0)]
    events = engine.tick(T0 + 61 * S)
    assert brief(events) == [("silent", AlertState.FIRING, 60), ("gas_high", AlertState.STALE, 60)]
    assert events[1].severity == 2
    assert brief(engine.observe(gas(62, 55))) == [
        ("silent", AlertState.RESOLVED, 62),
        ("gas_high", AlertState.FIRING, 62),
    ]


def test_stale_alert_resolves_directly_when_data_returns_clear() -> None:
    """A STALE alert whose data returns under every level (no clear_for) resolves without refiring."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [GAS, SILENT])
    engine.observe(gas(0, 30))
    engine.tick(T0 + 61 * S)
    assert brief(engine.observe(gas(62, 3))) == [
        ("silent", AlertState.RESOLVED, 62),
        ("gas_high", AlertState.RESOLVED, 62),
    ]


def test_suspect_and_bad_readings_neither_trigger_nor_keep_alive() -> None:
    """Only good readings are judged: suspect and bad ones are counted and change no state."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [GAS, SILENT])
    engine.observe(gas(0, 5))
    assert engine.observe(gas(10, 90, Quality.SUSPECT)) == []
    assert engine.observe(gas(30, 90, Quality.BAD)) == []
    assert brief(engine.tick(T0 + 60 * S)) == [("silent", AlertState.FIRING, 60)]
    counts = engine.counters()
    assert (counts["skipped_suspect"], counts["skipped_bad"]) == (1, 1)


def test_out_of_order_readings_are_ignored_and_counted() -> None:
    """A reading older than what a rule already judged changes nothing and is counted."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [GAS])
    engine.observe(gas(10, 5))
    assert engine.observe(gas(5, 90)) == []
    assert engine.counters()["out_of_order"] == 1
    assert brief(engine.observe(gas(10, 90))) == [("gas_high", AlertState.FIRING, 10)]


def test_unknown_devices_are_counted_and_fingerprints_follow_the_contract() -> None:
    """Readings of unregistered devices are counted; events are keyed gateway/device/rule."""
    engine = RuleEngine("gw9")
    engine.add_device("d1", [GAS])
    engine.add_device("d2", [GAS])
    assert engine.observe(gas(0, 90, device="nobody")) == []
    assert engine.counters()["unknown_device"] == 1
    events = engine.observe(gas(0, 90, device="d2"))
    assert [e.fingerprint for e in events] == ["gw9/d2/gas_high"]


def test_re_registering_keeps_state_of_unchanged_rules() -> None:
    """add_device again with the same rule keeps its firing state, so no duplicate FIRING is sent."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [GAS])
    engine.observe(gas(0, 60))
    engine.add_device("d1", [GAS, SILENT])
    assert engine.observe(gas(1, 60)) == []
