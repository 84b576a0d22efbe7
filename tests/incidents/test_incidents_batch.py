"""One `handle_batch` call (ingest's group commit) leaves exactly what handing its envelopes one by one leaves."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.db import Database
from cloud.incidents import intake
from gateway.alerts import AlertEvent, AlertState
from tests.incidents.incidents_rig import CENTER, FAR_GRID, GRID, GRID2, MIN, T0, alert, engine, snapshot

# Rules of every kind the rig's categories know: device cases, one family with two rules, an area
# phenomenon (grouped by grid), device health (the maintenance queue), and a rule with no category.
RULES = ["combustible_gas", "gas_rate", "well_level_high", "pm25_high", "cover_tilt", "gas_no_data", "unknown"]
STATES = [AlertState.FIRING, AlertState.FIRING, AlertState.RESOLVED, AlertState.STALE, AlertState.PENDING]

Envelopes = list[tuple[str, list[AlertEvent]]]


@st.composite
def streams(draw: st.DrawFn) -> tuple[Envelopes, list[int]]:
    """Return envelopes of alerts over a few devices and grids in time order (with replays), and call sizes."""
    ts = T0
    alerts: list[AlertEvent] = []
    for _ in range(draw(st.integers(1, 40))):
        if alerts and draw(st.integers(0, 9)) == 0:
            alerts.append(draw(st.sampled_from(alerts)))  # a replay of an earlier alert
            continue
        ts += draw(st.sampled_from([0, 1, 1_000, 5 * MIN, 11 * MIN]))  # the grouping window is 10 min
        alerts.append(
            alert(
                draw(st.sampled_from(RULES)),
                draw(st.sampled_from(STATES)),
                ts,
                device=f"dev-{draw(st.integers(0, 3))}",
                gateway=draw(st.sampled_from(["gw-1", "gw-2"])),
                part=draw(st.sampled_from([None, "part-1"])),
                grid=draw(st.sampled_from([GRID, GRID2, FAR_GRID, None])),
            )
        )
    envelopes: Envelopes = []
    rest = alerts
    while rest:
        size = draw(st.integers(1, 6))
        envelopes.append((rest[0].gateway, rest[:size]))
        rest = rest[size:]
    calls = draw(st.lists(st.integers(1, 4), min_size=len(envelopes), max_size=len(envelopes)))
    return envelopes, calls


def in_calls(envelopes: Envelopes, sizes: Sequence[int]) -> list[Envelopes]:
    """Cut the envelopes into consecutive calls of the given numbers of envelopes."""
    calls, at = [], 0
    for size in sizes:
        if at < len(envelopes):
            calls.append(envelopes[at : at + size])
            at += size
    return calls


@settings(max_examples=120, deadline=None)
@given(streams(), st.integers(1, 4), st.integers(1, 6), st.integers(1, 12))
def test_a_batch_call_equals_its_envelopes_one_by_one(
    stream: tuple[Envelopes, list[int]], flush_cases: int, flush_alerts: int, max_alerts: int
) -> None:
    """Cases, trails, key bindings, kept alerts and counts match whether envelopes come singly or in calls,
    whether a call writes its new cases and kept alerts in parts (small parts here) or at its end, and
    whether it is split into several transactions."""
    envelopes, sizes = stream
    one_by_one, batched = engine(), engine()
    for gateway, alerts in envelopes:
        one_by_one.handle(gateway, alerts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(intake, "FLUSH_CASES", flush_cases)
        patch.setattr(intake, "FLUSH_ALERTS", flush_alerts)
        patch.setattr(intake, "MAX_TRANSACTION_ALERTS", max_alerts)
        for call in in_calls(envelopes, sizes):
            batched.handle_batch(call)
    assert (snapshot(batched), batched.intake.counts) == (snapshot(one_by_one), one_by_one.intake.counts)


def test_a_batch_with_a_gas_episode_opens_joins_and_recovers_one_case() -> None:
    """Firing, firing again and resolved in three envelopes of one call make one case with its evidence."""
    eng = engine()
    eng.handle_batch(
        [
            ("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)]),
            ("gw-1", [alert("combustible_gas", AlertState.FIRING, T0 + MIN)]),
            ("gw-1", [alert("combustible_gas", AlertState.RESOLVED, T0 + 2 * MIN)]),
        ]
    )
    (case,) = eng.cases(CENTER)
    assert (case.alert_count, eng.intake.counts["opened"], eng.intake.counts["joined"]) == (2, 1, 1)
    assert len(eng.store.alerts_between(0, 2**62)) == 3


def mixed_stream(n: int) -> Envelopes:
    """Return envelopes of a deterministic mix of rules, states, devices, grids and times (with replays)."""
    alerts: list[AlertEvent] = []
    for i in range(n):
        if i % 17 == 16:
            alerts.append(alerts[i // 2])  # a replay
            continue
        alerts.append(
            alert(
                RULES[i % len(RULES)],
                STATES[(i // 3) % len(STATES)],
                T0 + i * 37_000,
                device=f"dev-{i % 11}",
                part="part-1" if i % 13 == 0 else None,
                grid=[GRID, GRID2, FAR_GRID, None][i % 4],
            )
        )
    return [("gw-1", alerts[at : at + 25]) for at in range(0, n, 25)]


@pytest.mark.integration
def test_a_call_on_postgresql_with_background_copies_equals_sqlite_one_by_one(postgres_url: str) -> None:
    """On PostgreSQL a call's parts are copied by a helper thread while it goes on: same end state."""
    envelopes = mixed_stream(600)
    reference = engine()
    for gateway, alerts in envelopes:
        reference.handle(gateway, alerts)
    db = Database.open(postgres_url)
    try:
        batched = engine(db)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(intake, "FLUSH_CASES", 7)
            patch.setattr(intake, "FLUSH_ALERTS", 30)
            for call in in_calls(envelopes, [3, 1, 20]):
                batched.handle_batch(call)
        assert (snapshot(batched), batched.intake.counts) == (snapshot(reference), reference.intake.counts)
        assert reference.intake.counts["opened"] > 20
    finally:
        db.close()
