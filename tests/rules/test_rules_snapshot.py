"""Rule engine snapshots: versioned JSON state that survives a restart, and refuses what it can't load."""

from __future__ import annotations

import json

import pytest

from device_profiles.schema import NoDataRule, ThresholdRule
from edge_agent.rules import SNAPSHOT_VERSION, RuleEngine, RulesError, SnapshotError
from gateway.alerts import AlertState
from gateway.readings import Reading

S = 1000
T0 = 1_700_000_000_000

HOLD = ThresholdRule.model_validate(
    {
        "kind": "threshold",
        "name": "tilt",
        "quantity": "tilt",
        "levels": [{"severity": 3, "above": 10}],
        "for": "10s",
    }
)
SILENT = NoDataRule.model_validate({"kind": "no_data", "name": "silent", "after": "60s"})


def tilt(sec: float, value: float) -> Reading:
    """Return a tilt reading of device d1 at `sec` seconds after T0."""
    return Reading("d1", "tilt", value, "deg", T0 + round(sec * S))


def restarted(engine: RuleEngine, *rules: ThresholdRule | NoDataRule) -> RuleEngine:
    """Snapshot `engine` through JSON text and load it into a fresh engine, as after a restart."""
    text = json.dumps(engine.snapshot())
    fresh = RuleEngine(engine.gateway)
    fresh.add_device("d1", rules)
    fresh.load_snapshot(json.loads(text))
    return fresh


def test_a_hold_that_ran_8_of_10_seconds_fires_2_seconds_after_restart() -> None:
    """A 10 s `for` pending since t0 with a last reading at t0+8 s fires at the first reading ≥ t0+10 s."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [HOLD])
    assert [e.state for e in engine.observe(tilt(0, 12))] == [AlertState.PENDING]
    assert engine.observe(tilt(8, 12)) == []
    engine = restarted(engine, HOLD)
    assert engine.observe(tilt(9.5, 12)) == []
    events = engine.observe(tilt(10, 12))
    assert [(e.state, e.ts_ms) for e in events] == [(AlertState.FIRING, T0 + 10 * S)]


def test_without_the_snapshot_the_hold_would_start_over() -> None:
    """A fresh engine without the snapshot pends again at t0+10 s: the snapshot is what carries the hold."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [HOLD])
    assert [e.state for e in engine.observe(tilt(10, 12))] == [AlertState.PENDING]


def test_firing_and_no_data_state_survive_a_restart() -> None:
    """A firing alert is not re-announced after restart, and the no-data clock keeps its last event time."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [HOLD.model_copy(update={"for_": 0.0}), SILENT])
    engine.observe(tilt(0, 12))
    engine = restarted(engine, HOLD.model_copy(update={"for_": 0.0}), SILENT)
    assert engine.observe(tilt(1, 13)) == []
    assert [(e.rule, e.state) for e in engine.tick(T0 + 61 * S)] == [
        ("silent", AlertState.FIRING),
        ("tilt", AlertState.STALE),
    ]


def test_a_changed_rule_starts_afresh_and_is_counted() -> None:
    """State saved for a rule whose definition changed is dropped, never fed to the new rule."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [HOLD])
    engine.observe(tilt(0, 12))
    changed = HOLD.model_copy(update={"for_": 20.0})
    engine = restarted(engine, changed)
    assert engine.counters()["snapshot_rule_dropped"] == 1
    assert [e.state for e in engine.observe(tilt(10, 12))] == [AlertState.PENDING]


def test_unknown_version_other_gateway_and_malformed_snapshots_raise() -> None:
    """load_snapshot raises SnapshotError for a wrong version, another gateway or a broken body."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", [HOLD])
    good = engine.snapshot()
    assert good["version"] == SNAPSHOT_VERSION
    with pytest.raises(SnapshotError, match="version"):
        engine.load_snapshot({**good, "version": SNAPSHOT_VERSION + 1})
    with pytest.raises(SnapshotError, match="gateway"):
        engine.load_snapshot({**good, "gateway": "gw2"})
    broken = json.loads(json.dumps(good))
    del broken["devices"]["d1"]["rules"]["tilt"]["state"]["since"]
    with pytest.raises(SnapshotError, match="malformed"):
        engine.load_snapshot(broken)
    assert issubclass(SnapshotError, RulesError)


def test_duplicate_rule_names_on_a_device_are_refused() -> None:
    """Two rules with one name on one device would share a fingerprint, so add_device refuses them."""
    engine = RuleEngine("gw1")
    with pytest.raises(RulesError, match="unique"):
        engine.add_device("d1", [HOLD, HOLD])
