"""Hypothesis properties of the rule engine: valid alert state machines, and restarts that change nothing."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.schema import NoDataRule, RateRule, ThresholdRule
from edge_agent.rules import Rule, RuleEngine
from gateway.alerts import AlertEvent, AlertState
from gateway.readings import Quality, Reading

T0 = 1_700_000_000_000
UNIT = {"gas_lel": "%LEL", "pressure": "MPa"}


def rules(for_s: float, clear_s: float, after_s: float) -> list[Rule]:
    """Return a device's rules: two-level gas, low pressure, a gas rate and a device no-data rule."""
    return [
        ThresholdRule.model_validate(
            {
                "kind": "threshold",
                "name": "gas_high",
                "quantity": "gas_lel",
                "levels": [{"severity": 1, "above": 25}, {"severity": 2, "above": 50}],
                "for": for_s,
                "clear_for": clear_s,
            }
        ),
        ThresholdRule.model_validate(
            {
                "kind": "threshold",
                "name": "pressure_low",
                "quantity": "pressure",
                "levels": [{"severity": 2, "below": 0.14}, {"severity": 3, "below": 0.05}],
                "clear_for": clear_s,
            }
        ),
        RateRule.model_validate(
            {"kind": "rate", "name": "gas_jump", "quantity": "gas_lel", "max_change": 20, "window": "5s"}
        ),
        NoDataRule.model_validate({"kind": "no_data", "name": "silent", "after": after_s}),
    ]


# One step: ("r", quantity, ms forward (negative: a late reading), value, quality), or a tick ms forward.
reading_step = st.tuples(
    st.just("r"),
    st.sampled_from(["gas_lel", "pressure"]),
    st.integers(-1500, 2500),
    # Values near the limits in runs, so holds complete and clears happen often.
    st.one_of(st.sampled_from([0.01, 0.1, 0.2, 10.0, 30.0, 60.0]), st.floats(0, 80, allow_nan=False)),
    st.sampled_from([Quality.GOOD, Quality.GOOD, Quality.GOOD, Quality.SUSPECT, Quality.BAD]),
)
tick_step = st.tuples(st.just("t"), st.just(""), st.integers(0, 30_000), st.just(0.0), st.just(Quality.GOOD))
steps = st.lists(st.one_of(reading_step, reading_step, reading_step, tick_step), min_size=20, max_size=80)
configs = st.tuples(st.sampled_from([0, 1, 3]), st.sampled_from([0, 2]), st.sampled_from([5, 20]))
Step = tuple[str, str, int, float, Quality]


def run(engine: RuleEngine, ops: list[Step], now: int) -> tuple[list[AlertEvent], int]:
    """Apply `ops` from clock `now` on; return the events and the clock after them."""
    events: list[AlertEvent] = []
    for kind, quantity, delta, value, quality in ops:
        if kind == "t":
            now += delta
            events += engine.tick(now)
        else:
            ts = now + delta
            now = max(now, ts)
            events += engine.observe(Reading("d1", quantity, value, UNIT[quantity], ts, quality))
    return events, now


def check_machine(events: list[AlertEvent]) -> None:
    """Assert each fingerprint's events form a valid inactive/pending/firing/stale machine."""
    state: dict[str, tuple[str, int]] = {}
    last_ts: dict[str, int] = {}
    for e in events:
        fp = e.fingerprint
        kind, sev = state.get(fp, ("inactive", 0))
        assert e.ts_ms >= last_ts.get(fp, 0), f"{fp} went back in time"
        last_ts[fp] = e.ts_ms
        if e.state is AlertState.PENDING:
            assert kind in ("inactive", "pending"), f"{fp}: pending while {kind}"
        elif e.state is AlertState.FIRING:
            assert kind != "firing" or e.severity != sev, f"{fp}: FIRING {sev} twice in a row"
        elif e.state is AlertState.STALE:
            assert (kind, sev) == ("firing", e.severity), f"{fp}: STALE while {kind}"
        else:
            assert kind in ("firing", "stale"), f"{fp}: RESOLVED while {kind}"
            assert e.severity == sev
        state[fp] = ("inactive", 0) if e.state is AlertState.RESOLVED else (e.state.value, e.severity)


@settings(max_examples=300, deadline=None)
@given(configs, steps)
def test_every_event_stream_is_a_valid_state_machine(config: tuple[int, int, int], ops: list[Step]) -> None:
    """For any readings and ticks, no fingerprint resolves unfired, refires the same severity or goes back."""
    engine = RuleEngine("gw1")
    engine.add_device("d1", rules(*config))
    events, _ = run(engine, ops, T0)
    check_machine(events)


@settings(max_examples=200, deadline=None)
@given(configs, steps, st.integers(0, 80))
def test_a_restart_anywhere_changes_no_event(config: tuple[int, int, int], ops: list[Step], cut: int) -> None:
    """Snapshotting through JSON and restoring at any point yields exactly the uninterrupted events."""
    whole = RuleEngine("gw1")
    whole.add_device("d1", rules(*config))
    expected, _ = run(whole, ops, T0)

    first = RuleEngine("gw1")
    first.add_device("d1", rules(*config))
    before, now = run(first, ops[:cut], T0)
    second = RuleEngine("gw1")
    second.add_device("d1", rules(*config))
    second.load_snapshot(json.loads(json.dumps(first.snapshot())))
    after, _ = run(second, ops[cut:], now)
    assert before + after == expected
